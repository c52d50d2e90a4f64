/** Retries check until it passes (every intervalMs), or fails with its last error after ms. */
export async function eventually<T>(check: () => Promise<T>, ms = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}
