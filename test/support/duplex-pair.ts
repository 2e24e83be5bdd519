// Two connected in-memory duplex streams (Node 20 has no stream.duplexPair yet).
import { Duplex } from "node:stream";

export function duplexPair(): [Duplex, Duplex] {
  const pair: Duplex[] = [];
  const make = (peer: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        peer().push(chunk);
        cb();
      },
      final(cb) {
        peer().push(null);
        cb();
      },
      destroy(err, cb) {
        const p = peer();
        if (!p.destroyed) p.destroy();
        cb(err);
      },
    });
  pair.push(make(() => pair[1]!), make(() => pair[0]!));
  return [pair[0]!, pair[1]!];
}
