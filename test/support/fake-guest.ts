// The guest inside the fake QEMU (fake-qemu.ts): an agent speaking mvm's protocol over whatever agent
// channel QEMU has connected (FakeAgent does the framing), and a few commands from a small table instead
// of processes. Sessions belong to the guest, not to a connection: they keep running while no host is
// connected, and a host that comes back gets HELLO again, LIST, and the exits nobody acknowledged, as
// docs/agent-protocol.md asks of the real agent.
//
// Commands: true, false, echo ARGS, sleep SECONDS, cat (stdin to stdout), poweroff (the guest powers off
// once it has exited), and sh -c 'STATEMENT; ...' where each statement is one of those, `exit N`, or
// `echo ... >&2`. Anything else does not exist (status 127, as the real agent reports).

import type { Socket } from "node:net";
import type { Frame } from "../../src/agent/frame.js";
import { FieldWriter, Fields } from "../../src/agent/fields.js";
import { ErrorCode, Field, FrameType, MAX_PAYLOAD, MAX_SESSIONS, PROTO_VERSION, WINDOW } from "../../src/agent/protocol.js";
import { FakeAgent } from "./fake-agent.js";

/** What a command does, in order; `status` sets the shell's $?, `exit` ends the command. */
type Step = { out: "stdout" | "stderr"; text: string } | { sleepMs: number } | { status: number } | { exit: number } | { cat: true } | { poweroff: true };

interface Session {
  id: number;
  argv: string[];
  pid: number;
  /** Frames produced while no host was connected (output waits, as the real agent's pipes do). */
  held: Array<{ type: number; payload: Buffer }>;
  exit?: Buffer;
  /** EXIT went to a host (it is sent again after LIST until one acknowledges it). */
  exitSent: boolean;
  stdin?: (data: Buffer) => void;
  signal?: (signo: number) => void;
}

export interface FakeGuestOptions {
  hostname: string;
  /** Called once a `poweroff` command has exited, or on the POWEROFF frame: the guest is going down. */
  powerOff: () => void;
  /** Whether the agent answers at all (FAKE_QEMU_MODE=no-hello: the guest never gets that far). */
  silent: boolean;
  bootedAt: number;
}

export class FakeGuest {
  private readonly sessions = new Map<number, Session>();
  private agent?: FakeAgent;
  private nextPid = 100;

  constructor(private readonly o: FakeGuestOptions) {}

  /** QEMU connected the agent channel (again): the agent says hello, as it does to every new host. */
  attach(socket: Socket): void {
    if (this.o.silent) {
      socket.resume(); // read and drop: a guest that never opened its port
      return;
    }
    const agent = new FakeAgent(socket, (_a, f) => this.onFrame(f));
    this.agent = agent;
    socket.once("close", () => {
      if (this.agent === agent) this.agent = undefined;
    });
    socket.on("error", () => undefined);
    this.sendHello();
    for (const s of this.sessions.values()) {
      for (const f of s.held.splice(0)) this.send(f.type, s.id, f.payload);
    }
  }

  private send(type: number, session: number, payload?: Buffer): boolean {
    if (!this.agent || this.agent.stream.destroyed) return false;
    this.agent.send(type, session, payload);
    return true;
  }

  private sendHello(): void {
    const w = new FieldWriter().u32(Field.PROTO, PROTO_VERSION).str(Field.AGENT_VERSION, "fake-qemu");
    for (const cap of ["exec", "stdin", "signal", "window", "poweroff", "exit-ack"]) w.str(Field.CAP, cap);
    const uptime = Date.now() - this.o.bootedAt + 300;
    w.u32(Field.MAX_PAYLOAD, MAX_PAYLOAD).u32(Field.WINDOW, WINDOW).u32(Field.MAX_SESSIONS, MAX_SESSIONS);
    w.bytes(Field.UPTIME_MS, u64(uptime)).bytes(Field.INIT_UPTIME_MS, u64(290));
    w.str(Field.KERNEL, "6.1.0-fake").str(Field.HOSTNAME, this.o.hostname).u32(Field.AGENT_PID, 1);
    this.send(FrameType.HELLO, 0, w.build());
  }

  private onFrame(f: Frame): void {
    const s = this.sessions.get(f.session);
    switch (f.type) {
      case FrameType.HELLO_REQ:
        return this.sendHello();
      case FrameType.EXEC:
        return this.exec(f.session, new Fields(f.payload).strs(Field.ARG));
      case FrameType.STDIN:
        s?.stdin?.(f.payload);
        if (s && f.payload.length) this.send(FrameType.STDIN_WINDOW, s.id, new FieldWriter().u32(Field.BYTES, f.payload.length).build());
        return;
      case FrameType.SIGNAL:
        s?.signal?.(new Fields(f.payload).u32(Field.SIGNO) ?? 15);
        return;
      case FrameType.EXIT_ACK:
        if (s?.exit) this.sessions.delete(s.id);
        return;
      case FrameType.LIST:
        return this.list();
      case FrameType.POWEROFF:
        this.send(FrameType.POWEROFF_ACK, 0);
        return this.o.powerOff();
      case FrameType.WINDOW:
      case FrameType.RESIZE:
        return;
      case FrameType.FS:
      case FrameType.READ:
      case FrameType.WRITE:
        this.send(FrameType.FS_DONE, f.session, new FieldWriter().u32(Field.ERRNO, 38).str(Field.MESSAGE, "the fake agent has no file operations").build());
        return;
      default:
        this.send(FrameType.ERROR, f.session, new FieldWriter().u32(Field.ERROR_CODE, ErrorCode.UNKNOWN_TYPE).str(Field.MESSAGE, `unknown frame type 0x${f.type.toString(16)}`).build());
    }
  }

  /** SESSIONS: everything held, running or ended and unacknowledged; then those exits again. */
  private list(): void {
    const w = new FieldWriter();
    for (const s of this.sessions.values()) {
      const head = Buffer.alloc(9);
      head.writeUInt32LE(s.id, 0);
      head.writeUInt32LE(s.pid, 4);
      w.bytes(Field.SESSION, Buffer.concat([head, Buffer.from(s.argv.join("\0")).subarray(0, 256)]));
    }
    this.send(FrameType.SESSIONS, 0, w.build());
    for (const s of this.sessions.values()) if (s.exit) s.exitSent = this.send(FrameType.EXIT, s.id, s.exit) || s.exitSent;
  }

  private exec(id: number, argv: string[]): void {
    const steps = interpret(argv);
    if (!steps) {
      const exit = new FieldWriter().u32(Field.EXIT_CODE, 127).str(Field.MESSAGE, `cannot run ${argv[0] ?? ""}: No such file or directory`).build();
      const s: Session = { id, argv, pid: 0, held: [], exit, exitSent: false };
      this.sessions.set(id, s);
      s.exitSent = this.send(FrameType.EXIT, id, exit);
      return;
    }
    const s: Session = { id, argv, pid: this.nextPid++, held: [], exitSent: false };
    this.sessions.set(id, s);
    this.emit(s, FrameType.STARTED, new FieldWriter().u32(Field.PID, s.pid).build());
    void this.run(s, steps);
  }

  /** Output goes out now, or waits for a host; an EXIT is sent now or after the next LIST. */
  private emit(s: Session, type: number, payload: Buffer): void {
    if (!this.send(type, s.id, payload)) s.held.push({ type, payload });
  }

  private async run(s: Session, steps: Step[]): Promise<void> {
    let killedBy: number | undefined;
    let wake: () => void = () => undefined;
    s.signal = (signo) => {
      if ([0, 17, 18, 28].includes(signo)) return; // 0, SIGCHLD, SIGCONT, SIGWINCH do not end a command
      killedBy = signo;
      wake();
    };
    let status = 0;
    let powerOff = false;
    for (const step of steps) {
      if (killedBy !== undefined) break;
      if ("out" in step) this.emit(s, step.out === "stdout" ? FrameType.STDOUT : FrameType.STDERR, Buffer.from(step.text));
      else if ("status" in step) status = step.status;
      else if ("exit" in step) {
        status = step.exit;
        break;
      } else if ("sleepMs" in step) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, step.sleepMs);
          wake = () => (clearTimeout(t), r());
        });
      } else if ("cat" in step) {
        await new Promise<void>((r) => {
          wake = r;
          s.stdin = (b) => (b.length ? this.emit(s, FrameType.STDOUT, b) : r());
        });
      } else powerOff = true;
    }
    s.stdin = undefined;
    s.signal = undefined;
    s.exit = killedBy !== undefined ? new FieldWriter().u32(Field.TERM_SIGNAL, killedBy).build() : new FieldWriter().u32(Field.EXIT_CODE, status).build();
    // Output still held is sent before the exit when a host comes; the exit itself waits for LIST then.
    if (s.held.length === 0) s.exitSent = this.send(FrameType.EXIT, s.id, s.exit);
    if (powerOff) this.o.powerOff();
  }
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(Math.max(0, Math.round(n))));
  return b;
}

/** The steps of a command from the table, or undefined when no such command exists. */
export function interpret(argv: string[]): Step[] | undefined {
  const [cmd, ...args] = argv;
  if (cmd === "sh" && args[0] === "-c" && args[1] !== undefined) {
    const steps: Step[] = [];
    for (const statement of args[1].split(/;|\n/).map((x) => x.trim()).filter(Boolean)) {
      const words = shellWords(statement);
      if (words[0] === "exit") return [...steps, { exit: Number(words[1] ?? 0) }];
      const toStderr = words.at(-1) === ">&2";
      const inner = interpret(toStderr ? words.slice(0, -1) : words) ?? [{ out: "stderr", text: `sh: ${words[0]}: not found\n` }, { status: 127 }];
      steps.push(...inner.map((st) => (toStderr && "out" in st ? { ...st, out: "stderr" as const } : st)));
    }
    return steps;
  }
  switch (cmd) {
    case "true":
      return [{ status: 0 }];
    case "false":
      return [{ status: 1 }];
    case "echo":
      return [{ out: "stdout", text: `${args.join(" ")}\n` }, { status: 0 }];
    case "sleep":
      return [{ sleepMs: Number(args[0] ?? 0) * 1000 }, { status: 0 }];
    case "cat":
      return [{ cat: true }, { status: 0 }];
    case "poweroff":
      return [{ poweroff: true }, { status: 0 }];
    default:
      return undefined;
  }
}

/** Words of one simple statement: whitespace-separated, with '...' and "..." quoting. */
function shellWords(s: string): string[] {
  return [...s.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}
