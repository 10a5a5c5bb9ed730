// dependency-cruiser's rules for src/: no circular imports, type-only imports included
// (tsPreCompilationDeps), checked by test/architecture.test.ts (`npm test`). The layer rules of
// STYLE.md are in that test too.
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'a cycle between modules, type-only imports included: one of them holds what the other needs, or a third module should',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)src/config/config-validator\\.generated\\.ts$' },
  },
};
