// Loaded into the pods scenario's agents (NODE_OPTIONS=--import): on SIGWINCH an agent runs
// a full garbage collection (the inspector's HeapProfiler.collectGarbage, from inside the
// process) and writes its memory after it to $NODEMESH_BENCH_GC_DIR/PID.json. Memory per
// pod is then what the agent holds, not how much garbage it had not yet collected: read
// without a collection, "heap used" at 100 pods swung from 22 to 45 MB between runs of the
// same code. SIGWINCH, not SIGUSR2 (the lab's supervisor restarts agents on it): its default
// is to be ignored, so a process without this handler is unharmed. Only the agent
// (`nodemesh.js agent …`) installs it.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.env.NODEMESH_BENCH_GC_DIR;
if (process.argv[2] === 'agent' && dir) {
  process.on('SIGWINCH', () => {
    const s = new Session();
    s.connect();
    s.post('HeapProfiler.collectGarbage', () => {
      writeFileSync(path.join(dir, `${process.pid}.json`), JSON.stringify({ at: Date.now(), ...process.memoryUsage() }));
      // not from inside the session's own callback: what follows a disconnect there never runs
      setImmediate(() => s.disconnect());
    });
  });
}
