import { describe, expect, it } from 'vitest';
import { isTransactionFatal } from '../../src/db/transaction-fatal';

// TypeORM wraps a driver's error in QueryFailedError, with the driver's error as `driverError`
// and its fields copied; other wrappers use `cause`.
const wrapped = (driverError: object): Error => Object.assign(new Error('query failed'), { driverError });

describe('isTransactionFatal', () => {
  it('knows the lock, abort and connection errors of PostgreSQL', () => {
    for (const code of ['40P01', '40001', '55P03', '57014', '25P02', '57P01', '08006']) {
      expect(isTransactionFatal(wrapped({ code })), code).toBe(true);
    }
    expect(isTransactionFatal(new Error('Connection terminated unexpectedly'))).toBe(true);
  });

  it('knows the lock, abort and connection errors of MySQL and MariaDB', () => {
    expect(isTransactionFatal(wrapped({ code: 'ER_LOCK_DEADLOCK', errno: 1213 }))).toBe(true);
    expect(isTransactionFatal(wrapped({ code: 'ER_LOCK_WAIT_TIMEOUT', errno: 1205 }))).toBe(true);
    expect(isTransactionFatal(new Error('outer', { cause: { code: 'PROTOCOL_CONNECTION_LOST' } }))).toBe(true);
  });

  it('leaves every other error to the caller', () => {
    expect(isTransactionFatal(wrapped({ code: '42501' }))).toBe(false); // permission denied
    expect(isTransactionFatal(wrapped({ code: '42703' }))).toBe(false); // undefined column
    expect(isTransactionFatal(wrapped({ code: 'ER_BAD_FIELD_ERROR', errno: 1054 }))).toBe(false);
    expect(isTransactionFatal(new Error('boom'))).toBe(false);
    expect(isTransactionFatal(undefined)).toBe(false);
    expect(isTransactionFatal('40P01')).toBe(false);
  });
});
