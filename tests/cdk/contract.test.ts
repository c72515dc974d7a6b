import { stageSettings } from '../../cdk/config';
import { CONTRACT, environmentFor, metricName, outOfRange } from '../../cdk/lib/contract';

/** cdk/contract.json as the CDK reads it (the Rust golden test keeps the file itself current). */
describe('contract', () => {
  test('lists the functions, settings and metrics the Rust code declares', () => {
    expect(CONTRACT.functions.map((f) => f.name)).toContain('login');
    expect(CONTRACT.functions.find((f) => f.name === 'login')?.endpoints).toEqual([
      { name: 'login', method: 'POST', path: '/auth/login', keys: 'private', hashes_password: true },
    ]);
    expect(CONTRACT.settings.find((s) => s.env === 'KEYGATE_ACCESS_TOKEN_TTL_SECONDS')).toMatchObject({ min: 1, max: 900, default: '900' });
    expect(CONTRACT.metrics.counters).toContain('LoginFailed');
  });

  test('a stage value goes to the variable of the setting named like it, and an unknown one is refused', () => {
    expect(environmentFor({ accessTokenTtlSeconds: 600, passwordRequireClasses: ['lower', 'digit'] })).toEqual({
      KEYGATE_ACCESS_TOKEN_TTL_SECONDS: '600',
      KEYGATE_PASSWORD_REQUIRE_CLASSES: 'lower,digit',
    });
    expect(() => environmentFor({ accessTokenTtl: 600 })).toThrow(/no setting/);
  });

  test('stage values are checked against the ranges the functions enforce', () => {
    expect(outOfRange(stageSettings('prod').auth)).toEqual([]);
    expect(outOfRange({ accessTokenTtlSeconds: 900, refreshReuseGraceSeconds: 0 })).toEqual([]);
    expect(outOfRange({ accessTokenTtlSeconds: 901 })).toEqual(['accessTokenTtlSeconds (KEYGATE_ACCESS_TOKEN_TTL_SECONDS) must be a whole number 1..900, got 901']);
    expect(outOfRange({ passwordMinLength: 7.5 })).toHaveLength(1);
  });

  test('a metric the contract does not list is refused', () => {
    expect(metricName('LoginFailed')).toBe('LoginFailed');
    expect(() => metricName('LoginFailures')).toThrow(/no metric/);
  });
});
