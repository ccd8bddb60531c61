/** Typed helpers for building and reading WA-binary stanzas (Baileys' `BinaryNode`). */
import type { BinaryNode } from '@whiskeysockets/baileys';

/** Attribute values that may be left out: `undefined` ones are dropped. */
export type LooseAttrs = Record<string, string | undefined>;

/** Builds a stanza, dropping attributes whose value is `undefined`. */
export function node(tag: string, attrs: LooseAttrs = {}, content?: BinaryNode['content']): BinaryNode {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) clean[k] = v;
  return content === undefined ? { tag, attrs: clean } : { tag, attrs: clean, content };
}

/** The element children of a stanza (none when its content is bytes or text). */
export function children(parent: BinaryNode | undefined, tag?: string): BinaryNode[] {
  const all = Array.isArray(parent?.content) ? parent.content : [];
  return tag === undefined ? all : all.filter((c) => c.tag === tag);
}

/** The first child with this tag (or the first child at all). */
export function child(parent: BinaryNode | undefined, tag?: string): BinaryNode | undefined {
  return children(parent, tag)[0];
}

/** A stanza's content as bytes (text content is UTF-8 encoded). */
export function bytesOf(n: BinaryNode | undefined): Buffer | undefined {
  const c = n?.content;
  if (c instanceof Uint8Array) return Buffer.from(c);
  if (typeof c === 'string') return Buffer.from(c, 'utf8');
  return undefined;
}

/** The bytes of the child with this tag. */
export function childBytes(parent: BinaryNode | undefined, tag: string): Buffer | undefined {
  return bytesOf(child(parent, tag));
}

/** Like `childBytes`, but throws when the child is missing (a malformed client stanza). */
export function requireChildBytes(parent: BinaryNode | undefined, tag: string): Buffer {
  const b = childBytes(parent, tag);
  if (!b) throw new Error(`stanza <${parent?.tag ?? '?'}> has no <${tag}> bytes`);
  return b;
}

/** Reads an unsigned big-endian integer of any width up to 6 bytes. */
export function readUIntBE(bytes: Uint8Array): number {
  return Buffer.from(bytes).readUIntBE(0, bytes.length);
}

/** Writes an unsigned big-endian integer in `width` bytes. */
export function uintBE(value: number, width: number): Buffer {
  const b = Buffer.alloc(width);
  b.writeUIntBE(value, 0, width);
  return b;
}

/** The current time in whole seconds, as WhatsApp writes it in `t` attributes. */
export function unixSeconds(): string {
  return String(Math.floor(Date.now() / 1000));
}
