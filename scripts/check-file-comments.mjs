// Lint: every file under src/ opens with a comment that says what the file is for in one line.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

function* files(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (path.endsWith('.ts')) yield path;
  }
}

/** `/** One line. *\/`, or a block whose first line is the summary, set apart by an empty line. */
function opensWithSummary(text) {
  const [first = '', second = '', third = ''] = text.split('\n', 3);
  if (/^\/\*\* \S.* \*\/$/.test(first)) return true;
  return first === '/**' && /^ \* \S/.test(second) && (third === ' *' || third === ' */');
}

const missing = [...files('src')].filter((f) => !opensWithSummary(readFileSync(f, 'utf8')));
if (missing.length > 0) {
  process.stderr.write(`These files do not open with a one-line comment saying what they are for:\n${missing.map((f) => `  ${f}`).join('\n')}\n`);
  process.exit(1);
}
