import type { Store } from '../state/store.js';
import type { Context } from './types.js';

/** Opens the fleet store for fn and always closes the connection. */
export async function withStore<T>(ctx: Context, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await ctx.openStore();
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
