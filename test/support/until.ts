/**
 * Waits until `cond` holds, polling once per event-loop turn at first (so
 * I/O callbacks run between polls) and then every 5 ms; fails naming what it
 * waited for after `timeoutMs`, so a test that waits never hangs.
 */
export async function until(cond: () => boolean, what: string = cond.toString(), timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let turn = 0; !cond(); turn++) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => (turn < 100 ? setImmediate(resolve) : setTimeout(resolve, 5)));
  }
}
