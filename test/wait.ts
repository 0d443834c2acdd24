// The one bound on waiting in the suites (tests wait for events, never for time).

/**
 * How long a test waits for something that must happen (a frame, a state it polls for) before it fails. It
 * bounds a hang, it never paces a test: a test waits for the event itself and passes as soon as it comes, so
 * this is long, for a CI machine whose cores are busy with other work. A test that asserts that something
 * does NOT happen waits a short time of its own (Client.none), which only makes it weaker, never flaky.
 */
const asked = Number(process.env['TEST_WAIT_MS']);
export const WAIT_MS = asked > 0 ? asked : 30_000;

/** Waits until `ok` holds, polling it; rejects after WAIT_MS (a hang, never a pace). */
export async function until(ok: () => boolean | Promise<boolean>, what = 'the condition'): Promise<void> {
  const end = Date.now() + WAIT_MS;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
