// ESLint: the JavaScript and typescript-eslint recommended rules (syntax-only, no type information, so a run takes
// seconds), on every source file of the repository. Formatting is Prettier's job (.prettierrc.json), not ESLint's.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig([
  // Build outputs (dist/, the web bundles in web/dist), generated WGSL modules, fixtures and local caches.
  globalIgnores([
    '**/dist/',
    '**/*.wgsl.ts',
    'conformance/fixtures/',
    'bench/results/',
    'web/screenshots/',
    '.cache/',
    '.gpu/',
  ]),
  js.configs.recommended,
  tseslint.configs.recommended,
  { languageOptions: { globals: globals.node } },
  { files: ['web/page/**'], languageOptions: { globals: globals.browser } },
  {
    rules: {
      // A leading underscore marks a parameter kept for a shared signature (the host/platform seams).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
]);
