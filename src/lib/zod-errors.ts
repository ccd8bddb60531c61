/** Zod validation problems as one readable sentence naming the fields. */
import type { z } from 'zod';

/** Every problem of a refused body, naming the field: `text: is required for type text`. */
export function describeZodError(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
}
