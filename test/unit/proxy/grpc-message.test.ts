// The grpc-message the agent writes on its own gRPC answers (a deny, a timeout, no instance) reads
// back as written in every client: printable ASCII as is, only `%` and the bytes outside 0x20–0x7E
// percent-encoded (gRPC over HTTP/2, "Percent-Encoded").
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { grpcMessage } from '../../../src/proxy/h2-forward.js';

describe('grpcMessage', () => {
  it('leaves printable ASCII as it is, spaces and colons included', () => {
    assert.equal(
      grpcMessage('mesh: default deny (mesh global) (web → greeter)'),
      'mesh: default deny (mesh global) (web %E2%86%92 greeter)',
    );
    assert.equal(grpcMessage('100% done\r\n'), '100%25 done%0D%0A');
  });

  it('decodes back to the message, and is a valid header value', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (m) => {
        const wire = grpcMessage(m);
        assert.match(wire, /^[\x20-\x7e]*$/);
        // A lone surrogate has no UTF-8 form: Buffer writes U+FFFD for it, as any encoder would.
        assert.equal(decodeURIComponent(wire), Buffer.from(m, 'utf8').toString('utf8'));
      }),
      { numRuns: 500 },
    );
  });
});
