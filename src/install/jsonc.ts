/**
 * jsonc-parser through its ESM build: the package's `main` is a UMD bundle whose
 * internal `require('./impl/format')` calls esbuild cannot follow, so a bundled
 * command would fail at run time. The ESM files bundle statically.
 */
export * from 'jsonc-parser/lib/esm/main.js';
