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

/**
 * What a guest may send beyond the credit it holds before it counts as ignoring flow control: one frame.
 * An agent resets a session's credit to a full window when a host connects, and then still sends the
 * frame it was sending when the previous host left.
 */
export const OVERRUN_SLACK = 256 * 1024;

/**
 * Receiving under flow control: credit goes back in quarters of the window, unless the reader paused.
 * It also counts the credit the guest still holds, so that a guest sending more than it was granted (which
 * would fill the host's memory while a reader is paused) is caught: received() then returns false.
 */
export class CreditedReceiver {
  private unacked = 0;
  private paused = false;
  /** The window plus every grant sent, less every byte received. */
  private credit: number;

  constructor(
    private readonly window: number,
    private readonly sendGrant: (n: number) => void,
  ) {
    this.credit = window;
  }

  /**
   * Counts n bytes as they arrive, before they are handed on; false when they go beyond the guest's
   * credit (the caller then fails the session instead of passing them on).
   */
  received(n: number): boolean {
    this.credit -= n;
    return this.credit >= -OVERRUN_SLACK;
  }

  /** n received bytes were handed on: their credit goes back (in quarters of the window). */
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
    this.credit += this.unacked;
    this.unacked = 0;
  }
}
