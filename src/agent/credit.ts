// Sending a byte stream to the guest under its flow control: at most the credit the agent granted, in
// frames of at most the payload cap; writes queue behind each other and wait for credit to come back.
// Command stdin and file writes both go through here.

export class CreditedSender {
  private credit: number;
  private waiters: Array<() => void> = [];
  private chain: Promise<void> = Promise.resolve();

  constructor(
    window: number,
    private readonly maxPayload: number,
    private readonly sendFrame: (chunk: Buffer) => void,
    /** Throws when the stream may no longer be written (the session ended). */
    private readonly ensureLive: () => void,
  ) {
    this.credit = window;
  }

  /** Queues bytes; resolves once they have all been handed to the channel. An empty buffer means end. */
  write(data: Buffer): Promise<void> {
    const job = this.chain.then(() => this.send(data));
    this.chain = job.catch(() => undefined);
    return job;
  }

  grant(n: number): void {
    this.credit += n;
    this.wake();
  }

  /** Lets waiting writes see that the session ended (they then throw from ensureLive). */
  wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async send(buf: Buffer): Promise<void> {
    this.ensureLive();
    if (buf.length === 0) return this.sendFrame(buf);
    for (let at = 0; at < buf.length; ) {
      this.ensureLive();
      if (this.credit === 0) {
        await new Promise<void>((r) => this.waiters.push(r));
        continue;
      }
      const n = Math.min(buf.length - at, this.credit, this.maxPayload);
      this.credit -= n;
      this.sendFrame(buf.subarray(at, at + n));
      at += n;
    }
  }
}

/** Receiving under flow control: credit goes back in quarters of the window, unless the reader paused. */
export class CreditedReceiver {
  private unacked = 0;
  private paused = false;

  constructor(
    private readonly window: number,
    private readonly sendGrant: (n: number) => void,
  ) {}

  consumed(n: number): void {
    this.unacked += n;
    this.flush();
  }

  /** Stops granting credit: the guest stops sending once what it has is used up. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.flush();
  }

  private flush(): void {
    if (this.paused || this.unacked < this.window / 4) return;
    this.sendGrant(this.unacked);
    this.unacked = 0;
  }
}
