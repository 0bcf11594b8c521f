// The reason a join gives for a failed dial: agents whose cluster keys differ fail in the
// handshakes in several ways, and each must point at --cluster-key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeDialError } from '../../../src/membership/service.js';

const named = (name: string, message: string): Error => Object.assign(new Error(message), { name });
const keyHint = /; is --cluster-key the same on both agents\?$/;

describe('describeDialError', () => {
  it('nothing listening: connection refused, no key hint', () => {
    assert.equal(
      describeDialError(new Error('connect ECONNREFUSED 127.0.0.1:7400')),
      'connection refused (no agent listening there)',
    );
  });

  it('a reset or close, in the pre-shared-key handshake or after it, may be a key mismatch', () => {
    for (const err of [
      new Error('pre-shared key handshake: read ECONNRESET'),
      new Error('read ECONNRESET'),
      named('EncryptionFailedError', 'read ECONNRESET'),
      named('EncryptionFailedError', 'Missing newline'),
      new Error('write EPIPE'),
    ]) {
      const text = describeDialError(err);
      assert.match(text, /^handshake failed \(/, err.message);
      assert.match(text, keyHint, err.message);
    }
  });

  it('a timeout says the key may differ only when the handshakes had begun', () => {
    const timeout = named('TimeoutError', 'The operation was aborted due to timeout');
    assert.equal(describeDialError(timeout), 'timed out (The operation was aborted due to timeout)');
    assert.equal(
      describeDialError(timeout, true),
      'handshake failed (no answer: The operation was aborted due to timeout); is --cluster-key the same on both agents?',
    );
  });
});
