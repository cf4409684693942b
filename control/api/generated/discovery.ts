import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { AccessLogging as _nodemesh_v1_AccessLogging, AccessLogging__Output as _nodemesh_v1_AccessLogging__Output } from './nodemesh/v1/AccessLogging.js';
import type { AttributeMatch as _nodemesh_v1_AttributeMatch, AttributeMatch__Output as _nodemesh_v1_AttributeMatch__Output } from './nodemesh/v1/AttributeMatch.js';
import type { AuthorizationPolicy as _nodemesh_v1_AuthorizationPolicy, AuthorizationPolicy__Output as _nodemesh_v1_AuthorizationPolicy__Output } from './nodemesh/v1/AuthorizationPolicy.js';
import type { AuthorizationRule as _nodemesh_v1_AuthorizationRule, AuthorizationRule__Output as _nodemesh_v1_AuthorizationRule__Output } from './nodemesh/v1/AuthorizationRule.js';
import type { ConnectionPool as _nodemesh_v1_ConnectionPool, ConnectionPool__Output as _nodemesh_v1_ConnectionPool__Output } from './nodemesh/v1/ConnectionPool.js';
import type { ConsistentHash as _nodemesh_v1_ConsistentHash, ConsistentHash__Output as _nodemesh_v1_ConsistentHash__Output } from './nodemesh/v1/ConsistentHash.js';
import type { CustomTag as _nodemesh_v1_CustomTag, CustomTag__Output as _nodemesh_v1_CustomTag__Output } from './nodemesh/v1/CustomTag.js';
import type { Destination as _nodemesh_v1_Destination, Destination__Output as _nodemesh_v1_Destination__Output } from './nodemesh/v1/Destination.js';
import type { DestinationPolicy as _nodemesh_v1_DestinationPolicy, DestinationPolicy__Output as _nodemesh_v1_DestinationPolicy__Output } from './nodemesh/v1/DestinationPolicy.js';
import type { DirectResponse as _nodemesh_v1_DirectResponse, DirectResponse__Output as _nodemesh_v1_DirectResponse__Output } from './nodemesh/v1/DirectResponse.js';
import type { DiscoveryClient as _nodemesh_v1_DiscoveryClient, DiscoveryDefinition as _nodemesh_v1_DiscoveryDefinition } from './nodemesh/v1/Discovery.js';
import type { Endpoint as _nodemesh_v1_Endpoint, Endpoint__Output as _nodemesh_v1_Endpoint__Output } from './nodemesh/v1/Endpoint.js';
import type { Fault as _nodemesh_v1_Fault, Fault__Output as _nodemesh_v1_Fault__Output } from './nodemesh/v1/Fault.js';
import type { FaultAbort as _nodemesh_v1_FaultAbort, FaultAbort__Output as _nodemesh_v1_FaultAbort__Output } from './nodemesh/v1/FaultAbort.js';
import type { FaultDelay as _nodemesh_v1_FaultDelay, FaultDelay__Output as _nodemesh_v1_FaultDelay__Output } from './nodemesh/v1/FaultDelay.js';
import type { Gateway as _nodemesh_v1_Gateway, Gateway__Output as _nodemesh_v1_Gateway__Output } from './nodemesh/v1/Gateway.js';
import type { HeaderOps as _nodemesh_v1_HeaderOps, HeaderOps__Output as _nodemesh_v1_HeaderOps__Output } from './nodemesh/v1/HeaderOps.js';
import type { Headers as _nodemesh_v1_Headers, Headers__Output as _nodemesh_v1_Headers__Output } from './nodemesh/v1/Headers.js';
import type { HttpMatch as _nodemesh_v1_HttpMatch, HttpMatch__Output as _nodemesh_v1_HttpMatch__Output } from './nodemesh/v1/HttpMatch.js';
import type { HttpRoute as _nodemesh_v1_HttpRoute, HttpRoute__Output as _nodemesh_v1_HttpRoute__Output } from './nodemesh/v1/HttpRoute.js';
import type { LatencyEjection as _nodemesh_v1_LatencyEjection, LatencyEjection__Output as _nodemesh_v1_LatencyEjection__Output } from './nodemesh/v1/LatencyEjection.js';
import type { LoadBalancer as _nodemesh_v1_LoadBalancer, LoadBalancer__Output as _nodemesh_v1_LoadBalancer__Output } from './nodemesh/v1/LoadBalancer.js';
import type { LocalityDistribute as _nodemesh_v1_LocalityDistribute, LocalityDistribute__Output as _nodemesh_v1_LocalityDistribute__Output } from './nodemesh/v1/LocalityDistribute.js';
import type { LocalityFailover as _nodemesh_v1_LocalityFailover, LocalityFailover__Output as _nodemesh_v1_LocalityFailover__Output } from './nodemesh/v1/LocalityFailover.js';
import type { LocalityLb as _nodemesh_v1_LocalityLb, LocalityLb__Output as _nodemesh_v1_LocalityLb__Output } from './nodemesh/v1/LocalityLb.js';
import type { MatchClause as _nodemesh_v1_MatchClause, MatchClause__Output as _nodemesh_v1_MatchClause__Output } from './nodemesh/v1/MatchClause.js';
import type { MetricsOverride as _nodemesh_v1_MetricsOverride, MetricsOverride__Output as _nodemesh_v1_MetricsOverride__Output } from './nodemesh/v1/MetricsOverride.js';
import type { Mirror as _nodemesh_v1_Mirror, Mirror__Output as _nodemesh_v1_Mirror__Output } from './nodemesh/v1/Mirror.js';
import type { NamedMatch as _nodemesh_v1_NamedMatch, NamedMatch__Output as _nodemesh_v1_NamedMatch__Output } from './nodemesh/v1/NamedMatch.js';
import type { NamespaceInfo as _nodemesh_v1_NamespaceInfo, NamespaceInfo__Output as _nodemesh_v1_NamespaceInfo__Output } from './nodemesh/v1/NamespaceInfo.js';
import type { Node as _nodemesh_v1_Node, Node__Output as _nodemesh_v1_Node__Output } from './nodemesh/v1/Node.js';
import type { OutlierDetection as _nodemesh_v1_OutlierDetection, OutlierDetection__Output as _nodemesh_v1_OutlierDetection__Output } from './nodemesh/v1/OutlierDetection.js';
import type { PortMtls as _nodemesh_v1_PortMtls, PortMtls__Output as _nodemesh_v1_PortMtls__Output } from './nodemesh/v1/PortMtls.js';
import type { PortPolicy as _nodemesh_v1_PortPolicy, PortPolicy__Output as _nodemesh_v1_PortPolicy__Output } from './nodemesh/v1/PortPolicy.js';
import type { Redirect as _nodemesh_v1_Redirect, Redirect__Output as _nodemesh_v1_Redirect__Output } from './nodemesh/v1/Redirect.js';
import type { RegexRewrite as _nodemesh_v1_RegexRewrite, RegexRewrite__Output as _nodemesh_v1_RegexRewrite__Output } from './nodemesh/v1/RegexRewrite.js';
import type { RetryBudget as _nodemesh_v1_RetryBudget, RetryBudget__Output as _nodemesh_v1_RetryBudget__Output } from './nodemesh/v1/RetryBudget.js';
import type { RetryPolicy as _nodemesh_v1_RetryPolicy, RetryPolicy__Output as _nodemesh_v1_RetryPolicy__Output } from './nodemesh/v1/RetryPolicy.js';
import type { Rewrite as _nodemesh_v1_Rewrite, Rewrite__Output as _nodemesh_v1_Rewrite__Output } from './nodemesh/v1/Rewrite.js';
import type { RouteTable as _nodemesh_v1_RouteTable, RouteTable__Output as _nodemesh_v1_RouteTable__Output } from './nodemesh/v1/RouteTable.js';
import type { RoutingConfig as _nodemesh_v1_RoutingConfig, RoutingConfig__Output as _nodemesh_v1_RoutingConfig__Output } from './nodemesh/v1/RoutingConfig.js';
import type { SecurityConfig as _nodemesh_v1_SecurityConfig, SecurityConfig__Output as _nodemesh_v1_SecurityConfig__Output } from './nodemesh/v1/SecurityConfig.js';
import type { Service as _nodemesh_v1_Service, Service__Output as _nodemesh_v1_Service__Output } from './nodemesh/v1/Service.js';
import type { ServicePort as _nodemesh_v1_ServicePort, ServicePort__Output as _nodemesh_v1_ServicePort__Output } from './nodemesh/v1/ServicePort.js';
import type { Snapshot as _nodemesh_v1_Snapshot, Snapshot__Output as _nodemesh_v1_Snapshot__Output } from './nodemesh/v1/Snapshot.js';
import type { StringMatch as _nodemesh_v1_StringMatch, StringMatch__Output as _nodemesh_v1_StringMatch__Output } from './nodemesh/v1/StringMatch.js';
import type { Subset as _nodemesh_v1_Subset, Subset__Output as _nodemesh_v1_Subset__Output } from './nodemesh/v1/Subset.js';
import type { TcpRoute as _nodemesh_v1_TcpRoute, TcpRoute__Output as _nodemesh_v1_TcpRoute__Output } from './nodemesh/v1/TcpRoute.js';
import type { TelemetryPolicy as _nodemesh_v1_TelemetryPolicy, TelemetryPolicy__Output as _nodemesh_v1_TelemetryPolicy__Output } from './nodemesh/v1/TelemetryPolicy.js';
import type { Tracing as _nodemesh_v1_Tracing, Tracing__Output as _nodemesh_v1_Tracing__Output } from './nodemesh/v1/Tracing.js';
import type { TrafficPolicy as _nodemesh_v1_TrafficPolicy, TrafficPolicy__Output as _nodemesh_v1_TrafficPolicy__Output } from './nodemesh/v1/TrafficPolicy.js';
import type { ValueMatch as _nodemesh_v1_ValueMatch, ValueMatch__Output as _nodemesh_v1_ValueMatch__Output } from './nodemesh/v1/ValueMatch.js';
import type { WatchRequest as _nodemesh_v1_WatchRequest, WatchRequest__Output as _nodemesh_v1_WatchRequest__Output } from './nodemesh/v1/WatchRequest.js';
import type { Workload as _nodemesh_v1_Workload, Workload__Output as _nodemesh_v1_Workload__Output } from './nodemesh/v1/Workload.js';
import type { WorkloadSecurity as _nodemesh_v1_WorkloadSecurity, WorkloadSecurity__Output as _nodemesh_v1_WorkloadSecurity__Output } from './nodemesh/v1/WorkloadSecurity.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  nodemesh: {
    v1: {
      AccessLogging: MessageTypeDefinition<_nodemesh_v1_AccessLogging, _nodemesh_v1_AccessLogging__Output>
      AttributeMatch: MessageTypeDefinition<_nodemesh_v1_AttributeMatch, _nodemesh_v1_AttributeMatch__Output>
      AuthorizationPolicy: MessageTypeDefinition<_nodemesh_v1_AuthorizationPolicy, _nodemesh_v1_AuthorizationPolicy__Output>
      AuthorizationRule: MessageTypeDefinition<_nodemesh_v1_AuthorizationRule, _nodemesh_v1_AuthorizationRule__Output>
      ConnectionPool: MessageTypeDefinition<_nodemesh_v1_ConnectionPool, _nodemesh_v1_ConnectionPool__Output>
      ConsistentHash: MessageTypeDefinition<_nodemesh_v1_ConsistentHash, _nodemesh_v1_ConsistentHash__Output>
      CustomTag: MessageTypeDefinition<_nodemesh_v1_CustomTag, _nodemesh_v1_CustomTag__Output>
      Destination: MessageTypeDefinition<_nodemesh_v1_Destination, _nodemesh_v1_Destination__Output>
      DestinationPolicy: MessageTypeDefinition<_nodemesh_v1_DestinationPolicy, _nodemesh_v1_DestinationPolicy__Output>
      DirectResponse: MessageTypeDefinition<_nodemesh_v1_DirectResponse, _nodemesh_v1_DirectResponse__Output>
      Discovery: SubtypeConstructor<typeof grpc.Client, _nodemesh_v1_DiscoveryClient> & { service: _nodemesh_v1_DiscoveryDefinition }
      Endpoint: MessageTypeDefinition<_nodemesh_v1_Endpoint, _nodemesh_v1_Endpoint__Output>
      Fault: MessageTypeDefinition<_nodemesh_v1_Fault, _nodemesh_v1_Fault__Output>
      FaultAbort: MessageTypeDefinition<_nodemesh_v1_FaultAbort, _nodemesh_v1_FaultAbort__Output>
      FaultDelay: MessageTypeDefinition<_nodemesh_v1_FaultDelay, _nodemesh_v1_FaultDelay__Output>
      Gateway: MessageTypeDefinition<_nodemesh_v1_Gateway, _nodemesh_v1_Gateway__Output>
      HeaderOps: MessageTypeDefinition<_nodemesh_v1_HeaderOps, _nodemesh_v1_HeaderOps__Output>
      Headers: MessageTypeDefinition<_nodemesh_v1_Headers, _nodemesh_v1_Headers__Output>
      HttpMatch: MessageTypeDefinition<_nodemesh_v1_HttpMatch, _nodemesh_v1_HttpMatch__Output>
      HttpRoute: MessageTypeDefinition<_nodemesh_v1_HttpRoute, _nodemesh_v1_HttpRoute__Output>
      LatencyEjection: MessageTypeDefinition<_nodemesh_v1_LatencyEjection, _nodemesh_v1_LatencyEjection__Output>
      LoadBalancer: MessageTypeDefinition<_nodemesh_v1_LoadBalancer, _nodemesh_v1_LoadBalancer__Output>
      LocalityDistribute: MessageTypeDefinition<_nodemesh_v1_LocalityDistribute, _nodemesh_v1_LocalityDistribute__Output>
      LocalityFailover: MessageTypeDefinition<_nodemesh_v1_LocalityFailover, _nodemesh_v1_LocalityFailover__Output>
      LocalityLb: MessageTypeDefinition<_nodemesh_v1_LocalityLb, _nodemesh_v1_LocalityLb__Output>
      MatchClause: MessageTypeDefinition<_nodemesh_v1_MatchClause, _nodemesh_v1_MatchClause__Output>
      MetricsOverride: MessageTypeDefinition<_nodemesh_v1_MetricsOverride, _nodemesh_v1_MetricsOverride__Output>
      Mirror: MessageTypeDefinition<_nodemesh_v1_Mirror, _nodemesh_v1_Mirror__Output>
      NamedMatch: MessageTypeDefinition<_nodemesh_v1_NamedMatch, _nodemesh_v1_NamedMatch__Output>
      NamespaceInfo: MessageTypeDefinition<_nodemesh_v1_NamespaceInfo, _nodemesh_v1_NamespaceInfo__Output>
      Node: MessageTypeDefinition<_nodemesh_v1_Node, _nodemesh_v1_Node__Output>
      OutlierDetection: MessageTypeDefinition<_nodemesh_v1_OutlierDetection, _nodemesh_v1_OutlierDetection__Output>
      PortMtls: MessageTypeDefinition<_nodemesh_v1_PortMtls, _nodemesh_v1_PortMtls__Output>
      PortPolicy: MessageTypeDefinition<_nodemesh_v1_PortPolicy, _nodemesh_v1_PortPolicy__Output>
      Redirect: MessageTypeDefinition<_nodemesh_v1_Redirect, _nodemesh_v1_Redirect__Output>
      RegexRewrite: MessageTypeDefinition<_nodemesh_v1_RegexRewrite, _nodemesh_v1_RegexRewrite__Output>
      RetryBudget: MessageTypeDefinition<_nodemesh_v1_RetryBudget, _nodemesh_v1_RetryBudget__Output>
      RetryPolicy: MessageTypeDefinition<_nodemesh_v1_RetryPolicy, _nodemesh_v1_RetryPolicy__Output>
      Rewrite: MessageTypeDefinition<_nodemesh_v1_Rewrite, _nodemesh_v1_Rewrite__Output>
      RouteTable: MessageTypeDefinition<_nodemesh_v1_RouteTable, _nodemesh_v1_RouteTable__Output>
      RoutingConfig: MessageTypeDefinition<_nodemesh_v1_RoutingConfig, _nodemesh_v1_RoutingConfig__Output>
      SecurityConfig: MessageTypeDefinition<_nodemesh_v1_SecurityConfig, _nodemesh_v1_SecurityConfig__Output>
      Service: MessageTypeDefinition<_nodemesh_v1_Service, _nodemesh_v1_Service__Output>
      ServicePort: MessageTypeDefinition<_nodemesh_v1_ServicePort, _nodemesh_v1_ServicePort__Output>
      Snapshot: MessageTypeDefinition<_nodemesh_v1_Snapshot, _nodemesh_v1_Snapshot__Output>
      StringMatch: MessageTypeDefinition<_nodemesh_v1_StringMatch, _nodemesh_v1_StringMatch__Output>
      Subset: MessageTypeDefinition<_nodemesh_v1_Subset, _nodemesh_v1_Subset__Output>
      TcpRoute: MessageTypeDefinition<_nodemesh_v1_TcpRoute, _nodemesh_v1_TcpRoute__Output>
      TelemetryPolicy: MessageTypeDefinition<_nodemesh_v1_TelemetryPolicy, _nodemesh_v1_TelemetryPolicy__Output>
      Tracing: MessageTypeDefinition<_nodemesh_v1_Tracing, _nodemesh_v1_Tracing__Output>
      TrafficPolicy: MessageTypeDefinition<_nodemesh_v1_TrafficPolicy, _nodemesh_v1_TrafficPolicy__Output>
      ValueMatch: MessageTypeDefinition<_nodemesh_v1_ValueMatch, _nodemesh_v1_ValueMatch__Output>
      WatchRequest: MessageTypeDefinition<_nodemesh_v1_WatchRequest, _nodemesh_v1_WatchRequest__Output>
      Workload: MessageTypeDefinition<_nodemesh_v1_Workload, _nodemesh_v1_Workload__Output>
      WorkloadSecurity: MessageTypeDefinition<_nodemesh_v1_WorkloadSecurity, _nodemesh_v1_WorkloadSecurity__Output>
    }
  }
}

