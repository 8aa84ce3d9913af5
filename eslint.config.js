// ESLint: the JavaScript and typescript-eslint recommended rules, with type
// information (floating and misused promises are the bugs that matter in an
// event-driven server), on the TypeScript of src/, test/, bench/ and
// scripts/. Layout is Prettier's business, not ESLint's.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'bench/bin/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // `import type` for what is only a type, so the layering checker and
      // the compiler agree on which imports run.
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      // node:test's test() and describe() return promises the runner awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] },
      ],
      // A catch passes on whatever was thrown; an errno-less throw is caught elsewhere.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
      // `async` without `await` is how an op that may throw promises a rejection instead.
      '@typescript-eslint/require-await': 'off',
      // `for (let b = this; b; b = b.parent)` walks a chain; it is not a `self = this` closure.
      '@typescript-eslint/no-this-alias': 'off',
      // `const { dropped: _, ...rest } = o` leaves a field out on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // Tests match indented output, where the spaces are what is shown.
      'no-regex-spaces': 'off',
    },
  },
  {
    // The addon's functions are free N-API functions: they use no `this`.
    files: ['src/native/*.ts'],
    rules: { '@typescript-eslint/unbound-method': 'off' },
  },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
  {
    // The console's page: plain JavaScript that runs in the browser.
    files: ['src/console/page/**/*.js'],
    languageOptions: { globals: globals.browser },
  },
);
