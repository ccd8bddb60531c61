// The layering of src/, checked by `npm run lint` (dependency-cruiser, type-only imports included).
//
// Rooms are stacked in layers: a room imports only rooms of lower layers, so
// no two folders can ever depend on each other. The never-rules below then
// say what the stacking alone does not: which process may load what, and that
// the two sides of the bridge stay apart. README.md, "Layout", draws it.

/** Lowest first. A room may import any room of a lower layer; rooms of one layer never import each other. */
const LAYERS = [
  ['lib'],
  ['model'],
  ['observability'],
  ['config'],
  ['redis', 'cluster'],
  ['chatwoot', 'whatsapp'],
  ['sandbox', 'inbound', 'outbound'],
  ['worker', 'primary/commands'],
  ['primary/http'],
  ['primary'],
];

/** The path pattern of a room's own files (`primary` holds only its top-level files; its subfolders are rooms of their own). */
const own = (room) => (room === 'primary' ? '^src/primary/[^/]+$' : `^src/${room}/`);

const layerRules = LAYERS.flatMap((layer, rank) => {
  const below = LAYERS.slice(0, rank).flat();
  return layer.map((room) => ({
    name: `layer-${room.replace('/', '-')}`,
    comment: `${below.length ? `src/${room} may import only ${below.map((r) => `src/${r}`).join(', ')}` : `src/${room} imports nothing else in src`}: a room never imports its own layer or a higher one, so folders never form a cycle.`,
    severity: 'error',
    from: { path: own(room) },
    to: {
      path: '^src/',
      pathNot: [own(room), ...below.map(own)],
    },
  }));
});

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'no-circular',
      comment: 'A file must not import itself through others: cycles make start-up order and mocking brittle.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'sides-apart',
      comment: 'The WhatsApp side (whatsapp, sandbox) and the Chatwoot side (chatwoot) never import each other: only the flows (inbound, outbound) connect them.',
      severity: 'error',
      from: { path: '^src/(whatsapp|sandbox)/' },
      to: { path: '^src/chatwoot/' },
    },
    {
      name: 'sides-apart-chatwoot',
      comment: 'The Chatwoot side (chatwoot) never imports the WhatsApp side (whatsapp, sandbox): only the flows (inbound, outbound) connect them.',
      severity: 'error',
      from: { path: '^src/chatwoot/' },
      to: { path: '^src/(whatsapp|sandbox)/' },
    },
    {
      name: 'primary-loads-no-driver',
      comment: 'The primary holds no WhatsApp socket, so it never loads Baileys, not even through another module (DESIGN.md: the primary holds no socket).',
      severity: 'error',
      from: { path: '^src/primary/' },
      to: { path: 'node_modules/@whiskeysockets/baileys/', reachable: true },
    },
    {
      name: 'primary-not-in-worker',
      comment: 'The primary never imports a worker\'s code or a WhatsApp driver; of the sandbox it reads only the Baileys-free records and schemas.',
      severity: 'error',
      from: { path: '^src/primary/' },
      to: { path: '^src/(worker|whatsapp)/|^src/sandbox/(?!(records|schemas)\\.ts$)' },
    },
    {
      name: 'http-touches-no-socket',
      comment: 'HTTP handlers never touch a socket or a worker: they reach instances through the control plane, over IPC.',
      severity: 'error',
      from: { path: '^src/primary/http/' },
      to: { path: '^src/(worker|whatsapp)/|^src/sandbox/(?!schemas\\.ts$)' },
    },
    {
      name: 'base-knows-no-process',
      comment: 'The base (lib, model, observability, config) knows no process and no side: it is what every room may use, so it uses none of them.',
      severity: 'error',
      from: { path: '^src/(lib|model|observability|config)/' },
      to: { path: '^src/(primary|worker|cluster|redis|inbound|outbound|chatwoot|whatsapp|sandbox)/' },
    },
    {
      name: 'production-code-only',
      comment: 'src/ never imports test/ or scripts/: test helpers stay out of the daemon.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|scripts)/' },
    },
    {
      name: 'one-entry-point',
      comment: 'Nothing imports src/main.ts: it is the entry point that picks the role.',
      severity: 'error',
      from: {},
      to: { path: '^src/main\\.ts$' },
    },
    {
      name: 'not-unresolvable',
      comment: 'Every import resolves to a file or an installed package.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'], extensions: ['.ts', '.js', '.d.ts'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
