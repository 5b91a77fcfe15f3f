/**
 * `pending`, or a rejection with an Error of `message()` once `ms` have passed, whichever comes
 * first; the timer is cleared either way. `pending` itself goes on (its late outcome is ignored).
 */
export async function within<T>(pending: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      pending,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message())), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
