/** Stand-ins for the primary's control plane (and its inbox creator) in HTTP tests: every call fails unless the test gives it an answer. */
import type { ControlPlaneLike } from '../../src/primary/http/operator-routes.js';

export function controlPlane(answers: Partial<ControlPlaneLike> = {}, failure: Error = new Error('not part of this test')): ControlPlaneLike {
  const refused = () => Promise.reject(failure);
  return {
    list: () => Promise.resolve([]),
    create: refused,
    start: refused,
    stop: refused,
    updateSettings: refused,
    logout: refused,
    call: refused,
    currentQr: () => Promise.resolve(undefined),
    known: () => Promise.resolve(),
    ...answers,
  };
}

/** The inbox creator of HTTP tests that create none: every call fails. */
export const unused = { provision: () => Promise.reject(new Error('this test creates no inbox')) };
