/** Most requests one batch carries (rows in a statement, jobs in a script call). */
const MAX_BATCH = 200;

interface Pending<In, Out> {
  readonly input: In;
  readonly resolve: (output: Out | null) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Collects the requests made in one turn of the event loop and runs them as one batch;
 * a request the batch has no output for gets null. Requests for the same key never share
 * a batch: a later one starts the next batch.
 */
export class MicroBatcher<In, Out> {
  #pending = new Map<string, Pending<In, Out>>();
  #scheduled = false;

  constructor(
    private readonly keyOf: (input: In) => string,
    private readonly run: (inputs: readonly In[]) => Promise<ReadonlyMap<string, Out>>,
  ) {}

  submit(input: In): Promise<Out | null> {
    const key = this.keyOf(input);
    if (this.#pending.has(key) || this.#pending.size >= MAX_BATCH) this.#flush();
    return new Promise<Out | null>((resolve, reject) => {
      this.#pending.set(key, { input, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#pending.size === 0) return;
    const batch = this.#pending;
    this.#pending = new Map();
    this.#settle(batch);
  }

  #settle(batch: ReadonlyMap<string, Pending<In, Out>>): void {
    this.run([...batch.values()].map(({ input }) => input)).then(
      (outputs) => {
        for (const [key, { resolve }] of batch) resolve(outputs.get(key) ?? null);
      },
      (error: unknown) => {
        if (batch.size === 1) {
          for (const { reject } of batch.values()) reject(error);
          return;
        }
        // One bad request fails the whole batch (a statement, a script): run each alone, so only its own caller
        // fails (an outage fails them all again, and their retries are their own).
        for (const [key, pending] of batch) this.#settle(new Map([[key, pending]]));
      },
    );
  }
}
