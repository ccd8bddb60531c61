import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BufferJSON } from '@whiskeysockets/baileys';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileAuthStore, InvalidInstanceKeyError } from '../../src/whatsapp/auth-store.js';

let parent: string;
let store: FileAuthStore;

beforeEach(async () => {
  parent = await mkdtemp(join(tmpdir(), 'ponte-auth-'));
  store = new FileAuthStore(parent);
});

afterEach(async () => {
  await rm(parent, { recursive: true, force: true });
});

describe('FileAuthStore', () => {
  it('keeps creds and keys across loads, Buffers included; null deletes', async () => {
    const a = await store.load('1-12');
    expect(await store.isLinked('1-12')).toBe(false);
    a.state.creds.me = { id: '5511987654321:3@s.whatsapp.net', name: 'Loja' };
    await a.saveCreds();
    await a.state.keys.set({ 'pre-key': { '1': { public: Buffer.from([1, 2, 3]), private: Buffer.from([4, 5, 6]) }, '2': { public: Buffer.alloc(1), private: Buffer.alloc(1) } } });
    await a.state.keys.set({ 'pre-key': { '2': null }, 'lid-mapping': { '5511987654321': '218512345678901' } });

    const b = await store.load('1-12');
    expect(b.state.creds.me?.id).toBe('5511987654321:3@s.whatsapp.net');
    expect(Buffer.isBuffer(b.state.creds.noiseKey.private)).toBe(true);
    expect(b.state.creds.noiseKey.private).toEqual(a.state.creds.noiseKey.private);
    const keys = await b.state.keys.get('pre-key', ['1', '2', '3']);
    expect(Object.keys(keys)).toEqual(['1']);
    expect(keys['1']?.public).toEqual(Buffer.from([1, 2, 3]));
    expect(await b.state.keys.get('lid-mapping', ['5511987654321'])).toEqual({ '5511987654321': '218512345678901' });
    expect(await store.isLinked('1-12')).toBe(true);
  });

  it('refuses instance keys that are not <digits>-<digits>, so nothing escapes the folder', async () => {
    for (const bad of ['../1-2', '1-2/../../etc', '..', '1-2/x', '01-2', '1_2', '', '1-2\0']) {
      await expect(store.load(bad), bad).rejects.toBeInstanceOf(InvalidInstanceKeyError);
      await expect(store.remove(bad), bad).rejects.toBeInstanceOf(InvalidInstanceKeyError);
    }
    expect(await readdir(parent)).toEqual([]);
  });

  it('key ids cannot name a path: separators and dots are encoded', async () => {
    const a = await store.load('3-4');
    await a.state.keys.set({ session: { '../../escape': { x: 1 } as never, '..': { y: 2 } as never } });
    const files = await readdir(join(parent, '3-4'));
    expect(files.every((f) => !f.includes('/'))).toBe(true);
    expect(await readdir(parent)).toEqual(['3-4']);
    expect(Object.keys(await a.state.keys.get('session', ['../../escape', '..']))).toEqual(['../../escape', '..']);
  });

  it('remove deletes the state; reset leaves fresh unlinked creds', async () => {
    const a = await store.load('5-6');
    a.state.creds.me = { id: '1@s.whatsapp.net' };
    await a.saveCreds();
    await store.reset('5-6');
    expect(await store.isLinked('5-6')).toBe(false);
    await store.remove('5-6');
    expect(await readdir(parent)).toEqual([]);
  });

  it('a corrupt file is an error, never silently an empty session', async () => {
    await store.load('7-8');
    await writeFile(join(parent, '7-8', 'creds.json'), '{"noiseKey":');
    await expect(store.load('7-8')).rejects.toThrow(SyntaxError);
  });

  it('a process killed while writing leaves a whole creds file, and the leftovers are cleaned on load', async () => {
    const a = await store.load('9-10');
    await a.saveCreds();
    const file = join(parent, '9-10', 'creds.json');
    // A writer that rewrites a large creds file as fast as it can, until killed.
    const writer = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `import { writeJsonAtomic } from './src/whatsapp/auth-store.ts';
         const big = { pad: 'x'.repeat(2_000_000) };
         let n = 0;
         for (;;) { await writeJsonAtomic(${JSON.stringify(file)}, { ...big, n: n++ }); if (n === 3) process.stdout.write('ready\\n'); }`,
      ],
      { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      writer.stdout.on('data', () => resolve());
      writer.on('exit', (code) => reject(new Error(`writer exited early (${code})`)));
    });
    writer.kill('SIGKILL');
    await new Promise((r) => writer.once('exit', r));
    const parsed = JSON.parse(await readFile(file, 'utf8'), BufferJSON.reviver) as { pad: string; n: number };
    expect(parsed.pad).toHaveLength(2_000_000);
    await store.load('9-10');
    expect((await readdir(join(parent, '9-10'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
