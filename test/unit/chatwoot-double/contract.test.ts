/**
 * The double's route table against Chatwoot's own OpenAPI files: every route
 * it serves is an operation the spec (plus the documented omissions)
 * defines, and the vendored spec is the shared one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SPEC_DIR, specOperations } from '../../support/chatwoot-double/contract.js';
import { startChatwootDouble } from '../../support/chatwoot-double/index.js';

const SHARED_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../../shared/chatwoot');
const FILES = ['swagger.json', 'swagger.missing-operations.json'];

describe('Chatwoot double contract', () => {
  it('serves only operations that Chatwoot defines', async () => {
    const double = await startChatwootDouble();
    try {
      const spec = specOperations();
      expect(double.routes.length).toBeGreaterThan(15);
      expect(double.routes.filter((r) => !spec.has(r))).toEqual([]);
    } finally {
      await double.close();
    }
  });

  it.runIf(existsSync(SHARED_DIR))('uses the same spec files as ../shared/chatwoot', () => {
    for (const f of FILES) expect(readFileSync(join(SPEC_DIR, f), 'utf8'), f).toBe(readFileSync(join(SHARED_DIR, f), 'utf8'));
  });

  it.skipIf(existsSync(SHARED_DIR))('../shared/chatwoot is absent: the vendored copy in test/support/chatwoot-double/spec is the contract', () => {
    for (const f of FILES) expect(existsSync(join(SPEC_DIR, f)), f).toBe(true);
  });
});
