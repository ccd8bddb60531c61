/**
 * Chatwoot's markdown converted to WhatsApp's formatting.
 *
 * What agents type in the dashboard: `**bold**` → `*bold*`, `*italic*`/`_italic_` → `_italic_`,
 * `~~strike~~` → `~strike~`, inline and fenced code kept, `[text](url)` →
 * `text (url)`, headings → bold lines, `* item` lists → `- item`, and the
 * `\` line breaks Chatwoot inserts removed. Code is left untouched.
 */
// Private-use characters mark stashed code and bold spans while the other rules run.
const STASH = '\uE000';
const BOLD = '\uE001';
const STASHED = new RegExp(`${STASH}(\\d+)${STASH}`, 'g');
const BOLDS = new RegExp(BOLD, 'g');

export function markdownToWhatsApp(md: string): string {
  const code: string[] = [];
  const stash = (s: string) => `${STASH}${code.push(s) - 1}${STASH}`;
  let t = md.replace(/\r\n/g, '\n');
  t = t.replace(/```[\s\S]*?```/g, (m) => stash(m));
  t = t.replace(/`[^`\n]+`/g, (m) => stash(m));
  t = t.replace(/\\\n/g, '\n');
  t = t.replace(/^#{1,6}\s+(.+)$/gm, (_, h: string) => `${BOLD}${h.trim()}${BOLD}`);
  t = t.replace(/^(\s*)[*+]\s+/gm, '$1- ');
  t = t.replace(/\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g, (_, text: string, url: string) => (text === url ? url : `${text} (${url})`));
  t = t.replace(/~~(.+?)~~/g, '~$1~');
  // Bold (double markers) goes to a placeholder first, so single markers left are italic.
  t = t.replace(/\*\*(.+?)\*\*/g, `${BOLD}$1${BOLD}`);
  t = t.replace(/__(.+?)__/g, `${BOLD}$1${BOLD}`);
  t = t.replace(/(^|[^\w*])\*(?!\s)([^*\n]+?)\*(?!\w)/g, '$1_$2_');
  t = t.replace(BOLDS, '*');
  t = t.replace(STASHED, (_, i: string) => code[Number(i)]!);
  return t;
}
