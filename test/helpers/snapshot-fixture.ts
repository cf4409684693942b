// One snapshot that uses every part of the contract (workloads, services with endpoints,
// nodes, routes with every kind of match and action, destination policies with subsets and
// port-level settings, mTLS modes, authorization rules with CIDRs), compiled through the
// real control-plane path, for tests of what crosses the wire.
import type { Snapshot } from '../../control/api/snapshot.js';
import { compileYaml, podYaml } from './config-yaml.js';

const CONFIG = `apiVersion: v1
kind: Node
metadata: {name: node-a}
status:
  addresses: [{type: InternalIP, address: 192.168.50.10}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {nodemesh.io/mesh: enabled}}
---
${podYaml('web-1', { ns: 'shop', labels: { app: 'web', version: 'v1' }, sa: 'web', ip: '10.244.0.11' })}---
${podYaml('web-2', { ns: 'shop', labels: { app: 'web', version: 'v2' }, sa: 'web', ip: '10.244.1.12', node: 'node-b' })}---
${podYaml('client', { ns: 'shop', labels: { app: 'client' }, sa: 'client', ip: 'fd00::15' })}---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.20
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, appProtocol: http}
  - {name: grpc, port: 9090}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  selector: {app: web}
  ports:
  - {name: tcp, port: 5432}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: shop}
spec:
  hosts: [db]
  tcp:
  - match: [{port: 5432}]
    route:
    - destination: {host: db}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: api}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    backendRefs: [{name: api, port: 80, weight: 3}, {name: gone, port: 80, weight: 1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - name: canary
    match:
    - uri: {prefix: /api}
      method: {exact: GET}
      headers:
        x-user: {regex: "a.*"}
      withoutHeaders:
        x-debug: {exact: "1"}
      queryParams:
        q: {exact: v}
      port: 80
      sourceLabels: {app: client}
    route:
    - destination: {host: web, subset: v1}
      weight: 90
      headers:
        request: {set: {x-a: "1"}, add: {x-b: "2"}, remove: [x-c]}
    - destination: {host: web, subset: v2, port: {number: 80}}
      weight: 10
    timeout: 3s
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: "5xx,503"}
    fault:
      delay: {fixedDelay: 5s, percentage: {value: 1.5}}
      abort: {httpStatus: 503, percentage: {value: 0.5}}
    mirror: {host: web, subset: v2}
    mirrorPercentage: {value: 25}
    rewrite: {uri: /v2}
    headers:
      response: {set: {x-served-by: web}}
  - match:
    - uri: {exact: /old}
    redirect: {uri: /new, authority: web.shop, redirectCode: 308}
  - match:
    - uri: {exact: /teapot}
    directResponse: {status: 418, body: {string: "short and stout"}}
  - match:
    - uri: {regex: "/re/.*"}
    rewrite:
      uriRegexRewrite: {match: "^/re/(.*)$", rewrite: "/\\\\1"}
    route:
    - destination: {host: web}
  - route:
    - destination: {host: web}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop, annotations: {nodemesh.io/latency-ejection: "3"}}
spec:
  host: web
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 2s}
      http: {http1MaxPendingRequests: 10, maxRetries: 5}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 15s, maxEjectionPercent: 50}
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer:
        consistentHash: {httpCookie: {name: session, path: /, ttl: 60s}}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: [cluster.local/ns/shop/sa/client], ipBlocks: [10.244.0.0/16, "fd00::/8"], notIpBlocks: [10.244.9.9]}
    to:
    - operation: {methods: [GET], paths: [/api/*], ports: ["8080"]}
    when:
    - {key: "request.headers[x-user]", values: [alice, "b*"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-debug, namespace: shop}
spec:
  action: DENY
  rules:
  - to:
    - operation: {paths: [/debug*]}
`;

/** Stands for a root certificate: the check reads no PEM, the identity code does. */
const ROOT_PEM = '-----BEGIN CERTIFICATE-----\nMIIBnodemeshtestroot\n-----END CERTIFICATE-----\n';

let compiled: Snapshot | undefined;

/** A fresh copy each call (the check completes a message in place). */
export function fullSnapshot(version = 1): Snapshot {
  compiled ??= { ...compileYaml(CONFIG, {}), trustBundle: [ROOT_PEM] };
  return { ...structuredClone(compiled), version };
}
