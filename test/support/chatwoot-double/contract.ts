/**
 * Chatwoot's request contract, from its own OpenAPI files (vendored under
 * `spec/`, copies of `../shared/chatwoot/`): `swagger.json` plus
 * `swagger.missing-operations.json` for what that version omits. Compiled
 * once into per-operation checks of path parameters, query parameters and
 * JSON bodies.
 *
 * Where the spec is stricter than Chatwoot's code, the code wins
 * (`reference/chatwoot.md` §6): message create does not require `content`,
 * contact create does not require `inbox_id`, conversation create does not
 * require `source_id`; a filter clause's `query_operator` may be null (the
 * spec's own example sends it so for the last clause) and its operator may
 * be `starts_with` (`filter_keys.yml`); a message status
 * PATCH with an unknown status is a silent no-op, not a refusal
 * (`Messages::StatusUpdateService`). Where the code is stricter than the
 * spec, the code wins too: `contacts/filter` without `payload` fails in
 * `Contacts::FilterService`, so `payload` is required.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

export const SPEC_DIR = join(dirname(fileURLToPath(import.meta.url)), 'spec');

type Json = Record<string, unknown>;

interface ParamSpec {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  type: string | undefined;
  enum: unknown[] | undefined;
}

export interface Operation {
  method: string;
  template: string;
  params: ParamSpec[];
  body:
    | {
        required: boolean;
        json?: ValidateFunction;
        /** The multipart form's fields (type, enum), when the operation takes one. */
        multipart?: Record<string, { type?: string; enum?: unknown[] }>;
      }
    | undefined;
}

const RELAXED_REQUIRED: Record<string, string[]> = {
  'POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/messages': ['content'],
  'POST /api/v1/accounts/{account_id}/contacts': ['inbox_id'],
  'POST /api/v1/accounts/{account_id}/conversations': ['source_id'],
};

/** Query parameters the code reads that the spec does not list (`reference/chatwoot.md` §6). */
const UNDOCUMENTED_QUERY: Record<string, string[]> = {
  'GET /api/v1/accounts/{account_id}/conversations': ['source_id', 'sort_by', 'updated_within'],
  'GET /api/v1/accounts/{account_id}/contacts/search': ['include_contact_inboxes'],
};

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

export function readSpecFiles(dir = SPEC_DIR): { swagger: Json; missing: Json } {
  return {
    swagger: JSON.parse(readFileSync(join(dir, 'swagger.json'), 'utf8')) as Json,
    missing: JSON.parse(readFileSync(join(dir, 'swagger.missing-operations.json'), 'utf8')) as Json,
  };
}

/** Every `METHOD template` the merged spec defines. */
export function specOperations(dir = SPEC_DIR): Set<string> {
  const { swagger, missing } = readSpecFiles(dir);
  const out = new Set<string>();
  for (const doc of [swagger, missing]) {
    for (const [path, item] of Object.entries(doc.paths as Record<string, Json>)) {
      for (const m of METHODS) if (item[m]) out.add(`${m.toUpperCase()} ${path}`);
    }
  }
  return out;
}

export class Contract {
  private readonly ajv: Ajv2020;
  private readonly components: Json;
  private readonly paths: Record<string, Json> = {};

  constructor(dir = SPEC_DIR) {
    const { swagger, missing } = readSpecFiles(dir);
    this.components = swagger.components as Json;
    for (const doc of [swagger, missing]) {
      for (const [path, item] of Object.entries(doc.paths as Record<string, Json>)) this.paths[path] = { ...(this.paths[path] ?? {}), ...item };
    }
    this.ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
    const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void;
    addFormats(this.ajv);
    this.ajv.addSchema({ $id: 'cw', components: this.components });
  }

  /** The operation for a route of the double, or undefined when the spec has none. */
  operation(method: string, template: string): Operation | undefined {
    const item = this.paths[template];
    const op = item?.[method.toLowerCase()] as Json | undefined;
    if (!item || !op) return undefined;
    const key = `${method} ${template}`;
    const params = [...((item.parameters as Json[] | undefined) ?? []), ...((op.parameters as Json[] | undefined) ?? [])].map((p) => this.param(p));
    for (const name of UNDOCUMENTED_QUERY[key] ?? []) params.push({ name, in: 'query', required: false, type: undefined, enum: undefined });
    const rb = op.requestBody as Json | undefined;
    let body: Operation['body'];
    if (rb) {
      const content = (rb.content ?? {}) as Record<string, Json>;
      const jsonSchema = content['application/json']?.schema as Json | undefined;
      body = {
        required: rb.required === true,
        ...(content['multipart/form-data'] ? { multipart: this.formFields(content['multipart/form-data'].schema as Json | undefined) } : {}),
        ...(jsonSchema ? { json: this.compile(jsonSchema, key) } : {}),
      };
    }
    return { method, template, params, body };
  }

  private formFields(schema: Json | undefined): Record<string, { type?: string; enum?: unknown[] }> {
    const top = typeof schema?.$ref === 'string' ? (this.resolve(schema.$ref) as Json) : (schema ?? {});
    const out: Record<string, { type?: string; enum?: unknown[] }> = {};
    for (const [name, prop] of Object.entries((top.properties ?? {}) as Record<string, Json>)) {
      out[name] = { ...(typeof prop.type === 'string' ? { type: prop.type } : {}), ...(Array.isArray(prop.enum) ? { enum: prop.enum } : {}) };
    }
    return out;
  }

  private param(p: Json): ParamSpec {
    const resolved = typeof p.$ref === 'string' ? (this.resolve(p.$ref) as Json) : p;
    const schema = (resolved.schema ?? {}) as Json;
    return {
      name: String(resolved.name),
      in: resolved.in as ParamSpec['in'],
      required: resolved.required === true,
      type: typeof schema.type === 'string' ? schema.type : undefined,
      enum: Array.isArray(schema.enum) ? schema.enum : undefined,
    };
  }

  private resolve(ref: string): unknown {
    let node: unknown = { components: this.components };
    for (const part of ref.replace(/^#\//, '').split('/')) node = (node as Json)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    return node;
  }

  private compile(schema: Json, key: string): ValidateFunction {
    // Work on a copy with the top level resolved, so the code-over-spec
    // relaxations can be applied without touching shared components.
    let top = structuredClone(schema);
    if (typeof top.$ref === 'string') top = structuredClone(this.resolve(top.$ref) as Json);
    const relaxed = RELAXED_REQUIRED[key];
    if (relaxed && Array.isArray(top.required)) top.required = (top.required as string[]).filter((r) => !relaxed.includes(r));
    if (key === 'PATCH /api/v1/accounts/{account_id}/conversations/{conversation_id}/messages/{message_id}') {
      const status = (top.properties as Json | undefined)?.status as Json | undefined;
      if (status) delete status.enum;
    }
    if (key === 'POST /api/v1/accounts/{account_id}/contacts/filter') {
      top.required = ['payload'];
      const clause = ((top.properties as Json).payload as Json).items as Json;
      const qo = (clause.properties as Json).query_operator as Json;
      qo.enum = [...(qo.enum as unknown[]), null];
      qo.type = ['string', 'null'];
      // lib/filters/filter_keys.yml: phone_number also takes starts_with.
      const fo = (clause.properties as Json).filter_operator as Json;
      if (Array.isArray(fo.enum) && !fo.enum.includes('starts_with')) fo.enum = [...(fo.enum as unknown[]), 'starts_with'];
    }
    return this.ajv.compile(rewriteRefs(top));
  }
}

/** Points local `#/components/...` references at the registered `cw` document. */
function rewriteRefs<T>(node: T): T {
  if (Array.isArray(node)) return node.map(rewriteRefs) as T;
  if (node && typeof node === 'object') {
    const out: Json = {};
    for (const [k, v] of Object.entries(node as Json)) out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? `cw${v}` : rewriteRefs(v);
    return out as T;
  }
  return node;
}

/** Problems with a request's parameters, in words (empty when it conforms). */
export function checkParams(op: Operation, pathParams: Record<string, string>, query: URLSearchParams): string[] {
  const problems: string[] = [];
  for (const p of op.params) {
    const value = p.in === 'path' ? pathParams[p.name] : p.in === 'query' ? (query.get(p.name) ?? undefined) : undefined;
    if (p.in === 'header') continue;
    if (value === undefined) {
      if (p.required) problems.push(`missing ${p.in} parameter ${p.name}`);
      continue;
    }
    if ((p.type === 'integer' && !/^-?\d+$/.test(value)) || (p.type === 'number' && !Number.isFinite(Number(value)))) {
      problems.push(`${p.in} parameter ${p.name}=${value} is not a ${p.type}`);
    }
    if (p.enum && !p.enum.includes(value)) problems.push(`${p.in} parameter ${p.name}=${value} is not one of ${p.enum.join(', ')}`);
  }
  return problems;
}

export function describeErrors(validate: ValidateFunction): string {
  return (validate.errors ?? []).map((e) => `${e.instancePath || 'body'} ${e.message ?? 'is invalid'}`).join('; ');
}

/** Problems with a multipart form's text fields against the spec's form schema (empty when it conforms). */
export function checkForm(fields: Record<string, { type?: string; enum?: unknown[] }>, form: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const [name, value] of Object.entries(form)) {
    const spec = fields[name];
    if (!spec || typeof value !== 'string') continue;
    if (spec.enum && !spec.enum.includes(value)) problems.push(`form field ${name}=${JSON.stringify(value)} is not one of ${spec.enum.join(', ')}`);
    if (spec.type === 'boolean' && !['true', 'false', '1', '0'].includes(value)) problems.push(`form field ${name}=${JSON.stringify(value)} is not a boolean`);
    if ((spec.type === 'integer' || spec.type === 'number') && !Number.isFinite(Number(value))) problems.push(`form field ${name}=${JSON.stringify(value)} is not a ${spec.type}`);
  }
  return problems;
}
