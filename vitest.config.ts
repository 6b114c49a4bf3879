import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run on the TypeScript sources, one module instance per package.
    alias: [
      // The host/platform seams (package.json "imports"), Node side, as sources.
      { find: /^#host$/, replacement: src('./packages/core/src/host/node.ts') },
      { find: /^#platform$/, replacement: src('./packages/glm4v/src/platform/node.ts') },
      { find: /^@glm4v\/core$/, replacement: src('./packages/core/src/index.ts') },
      { find: /^@glm4v\/core\/testing$/, replacement: src('./packages/core/src/testing.ts') },
      { find: /^@glm4v\/kernels$/, replacement: src('./kernels/src/index.ts') },
      { find: /^@glm4v\/runtime$/, replacement: src('./packages/glm4v/src/index.ts') },
      { find: /^@glm4v\/runtime\/internal$/, replacement: src('./packages/glm4v/src/internal.ts') },
      { find: /^@glm4v\/runtime\/testing$/, replacement: src('./packages/glm4v/src/testing.ts') },
    ],
  },
  test: {
    include: [
      'packages/*/src/**/*.test.ts',
      'kernels/src/**/*.test.ts',
      'conformance/**/*.test.ts',
      'tools/**/*.test.ts',
      'web/**/*.test.ts',
    ],
    // Each file makes its own device; lavapipe already uses every core, so files run two at a time at most.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
