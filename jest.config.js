/** CDK assertion and compliance tests (tests/cdk), TypeScript through @swc/jest. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests/cdk'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  setupFiles: ['<rootDir>/tests/cdk/setup.ts'],
  testTimeout: 180000,
  maxWorkers: 2,
};
