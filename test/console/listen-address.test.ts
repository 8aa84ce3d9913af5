/** `--http [ADDR:]PORT`: loopback unless an address is named. */
import { strict as assert } from 'node:assert';
import { it } from 'node:test';
import { hostPort, isLoopback, parseListenAddress, reachableHost } from '../../src/console/listen-address.js';

it('a bare port is loopback; a named address is kept, IPv6 in brackets', () => {
  assert.deepEqual(parseListenAddress('8080'), { host: '127.0.0.1', port: 8080, explicit: false });
  assert.deepEqual(parseListenAddress('0'), { host: '127.0.0.1', port: 0, explicit: false });
  assert.deepEqual(parseListenAddress('0.0.0.0:80'), { host: '0.0.0.0', port: 80, explicit: true });
  assert.deepEqual(parseListenAddress('localhost:9'), { host: 'localhost', port: 9, explicit: true });
  assert.deepEqual(parseListenAddress('[::1]:8080'), { host: '::1', port: 8080, explicit: true });
  for (const bad of ['', 'x', '65536', 'host:', '::1:80', '[::1]', '[nope]:1', '1:2:3']) {
    assert.throws(
      () => parseListenAddress(bad),
      (e: Error & { code?: string }) => e.code === 'EINVAL',
      bad,
    );
  }
});

it('tells loopback addresses, and the address a local browser uses', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.equal(isLoopback(h), true, h);
  for (const h of ['0.0.0.0', '::', '192.168.1.2', 'example.org']) assert.equal(isLoopback(h), false, h);
  assert.equal(reachableHost('0.0.0.0'), '127.0.0.1');
  assert.equal(reachableHost('::'), '::1');
  assert.equal(hostPort('::1', 80), '[::1]:80');
  assert.equal(hostPort('127.0.0.1', 80), '127.0.0.1:80');
});
