import { describe, expect, it } from 'vitest';
import { isLoopback } from '../../src/dashboard/options';
import { Ring } from '../../src/dashboard/sampler';
import { hostnameOf, sameToken } from '../../src/dashboard/http';

describe('dashboard pieces', () => {
  it('the ring keeps the last `capacity` items, oldest first', () => {
    const ring = new Ring<number>(3);
    expect(ring.toArray()).toEqual([]);
    ring.push(1);
    ring.push(2);
    expect(ring.toArray()).toEqual([1, 2]);
    for (let i = 3; i <= 7; i += 1) ring.push(i);
    expect(ring.toArray()).toEqual([5, 6, 7]);
  });

  it('loopback addresses and Host headers', () => {
    for (const h of ['127.0.0.1', '127.8.9.10', 'localhost', 'LOCALHOST', '::1', '[::1]', '::ffff:127.0.0.1']) {
      expect(isLoopback(h), h).toBe(true);
    }
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.com', '127.example.com', '']) {
      expect(isLoopback(h), h).toBe(false);
    }
    expect(hostnameOf('127.0.0.1:8080')).toBe('127.0.0.1');
    expect(hostnameOf('[::1]:8080')).toBe('::1');
    expect(hostnameOf('localhost')).toBe('localhost');
    expect(hostnameOf(undefined)).toBe('');
  });

  it('tokens compare whole', () => {
    expect(sameToken('abc', 'abc')).toBe(true);
    expect(sameToken('abc', 'abcd')).toBe(false);
    expect(sameToken('', 'abc')).toBe(false);
  });
});
