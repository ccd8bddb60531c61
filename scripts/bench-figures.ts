/**
 * The benchmark's figures: each measured value beside its target, collected
 * by every part of `npm run bench` and printed as one table at the end.
 * A figure is printed, never asserted.
 */

export interface Target {
  /** `min`: the value must be at least `value`; `max`: at most. */
  kind: 'min' | 'max';
  value: number;
}

export interface Figure {
  section: string;
  name: string;
  value: number;
  unit: string;
  /** Digits after the point when printed (default: 0 from 100 up, 1 from 10, else 2). */
  digits?: number;
  target?: Target;
}

export const atLeast = (value: number): Target => ({ kind: 'min', value });
export const atMost = (value: number): Target => ({ kind: 'max', value });

export function met(f: Figure): boolean | undefined {
  if (!f.target) return undefined;
  return f.target.kind === 'min' ? f.value >= f.target.value : f.value <= f.target.value;
}

function format(value: number, digits?: number): string {
  const d = digits ?? (Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2);
  return value.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export class Figures {
  private readonly list: Figure[] = [];

  add(f: Figure): void {
    this.list.push(f);
    console.log(`  ${f.name}: ${format(f.value, f.digits)} ${f.unit}${f.target ? `  (target ${f.target.kind === 'min' ? '≥' : '≤'} ${format(f.target.value, f.digits)})` : ''}`);
  }

  /** The whole table, by section, with a column saying whether each target is met. */
  print(): void {
    const rows = this.list.map((f) => {
      const ok = met(f);
      return [
        f.section,
        f.name,
        `${format(f.value, f.digits)} ${f.unit}`,
        f.target ? `${f.target.kind === 'min' ? '≥' : '≤'} ${format(f.target.value, f.digits)}` : '',
        ok === undefined ? '' : ok ? 'met' : 'MISSED',
      ];
    });
    const head = ['section', 'figure', 'measured', 'target', ''];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
    console.log(`\n${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
    for (const r of rows) console.log(line(r));
  }
}
