// CI_REQUIRE=redis,chromium,prometheus (set by .ci/run, which installs them): a suite whose dependency is missing fails
// instead of skipping, so that a CI machine cannot pass by running less. Unset (a developer's machine), it skips.
export type Requirement = 'redis' | 'chromium' | 'prometheus';

const REQUIRED = new Set((process.env['CI_REQUIRE'] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''));

/**
 * `missing` (why the suite cannot run here, or false when it can) as a tap skip reason; throws instead when
 * CI_REQUIRE names the requirement, which fails the test file that asked.
 */
export function skipUnlessRequired(requirement: Requirement, missing: string | false): string | false {
  if (missing !== false && REQUIRED.has(requirement)) {
    throw new Error(`CI_REQUIRE=${process.env['CI_REQUIRE']} names ${requirement}, so this suite fails instead of skipping: ${missing.trim()}`);
  }
  return missing;
}
