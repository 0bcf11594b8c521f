// The routing and authorization kinds: service-router, service-splitter, service-resolver,
// service-intentions and mesh. Every bad field is reported, with its path inside the spec.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkName, checkSpec } from '../../../src/core/state/command.js';
import { splitEntryFile } from '../../../src/core/state/entry-file.js';
import { KIND_NAMES, KINDS } from '../../../src/core/state/kinds/index.js';

const router = KINDS['service-router']!;
const splitter = KINDS['service-splitter']!;
const resolver = KINDS['service-resolver']!;
const intentions = KINDS['service-intentions']!;
const mesh = KINDS.mesh!;
const fields = (errs: { field: string }[]) => errs.map((e) => e.field);

describe('routing kinds registry', () => {
  it('registers the five kinds', () => {
    for (const k of [
      'service-router',
      'service-splitter',
      'service-resolver',
      'service-intentions',
      'mesh',
    ]) {
      assert.ok(KIND_NAMES.includes(k), k);
    }
  });

  it('names the destination service: a service name, "*" only for intentions', () => {
    assert.equal(router.validateName?.('api'), undefined);
    assert.equal(router.validateName?.('my_api')?.field, 'name');
    assert.equal(checkName('service-router', '*')?.field, 'name');
    assert.equal(checkName('service-intentions', '*'), undefined);
    assert.equal(checkName('service-intentions', 'api'), undefined);
    assert.equal(checkName('service-intentions', 'a.b')?.field, 'name');
    assert.equal(checkName('service-defaults', '*')?.field, 'name');
    assert.deepEqual(
      splitEntryFile({ kind: 'service-intentions', name: '*', sources: [{ name: 'web', action: 'deny' }] }),
      {
        kind: 'service-intentions',
        name: '*',
        spec: { sources: [{ action: 'deny', name: 'web' }] },
      },
    );
    assert.equal(checkName('mesh', 'global'), undefined);
    assert.match(checkName('mesh', 'other')?.message ?? '', /must be "global"/);
  });
});

describe('service-router', () => {
  it('accepts a full router and an empty one', () => {
    assert.deepEqual(router.validate({}), []);
    assert.deepEqual(router.validate({ routes: [] }), []);
    const spec = {
      routes: [
        {
          match: {
            http: {
              pathPrefix: '/admin/',
              methods: ['GET', 'POST'],
              header: [
                { name: 'x-debug', present: true },
                { name: 'X-Env', exact: 'canary', invert: true },
                { name: 'user-agent', regex: '.*curl.*' },
              ],
              queryParam: [{ name: 'v', exact: '2' }, { name: 'beta' }],
            },
          },
          destination: {
            service: 'admin',
            serviceSubset: 'v2',
            prefixRewrite: '/',
            requestTimeoutMs: 5000,
            numRetries: 3,
            retryOnStatusCodes: [503, 502],
            retryOnConnectFailure: true,
            retryOn: ['5xx', 'gateway-error', 'connect-failure', 'unavailable', 'deadline-exceeded'],
          },
        },
        { match: { http: { pathRegex: '/api/v[0-9]+/.*' } } },
        { destination: { service: 'fallback' } },
      ],
    };
    assert.deepEqual(router.validate(spec), []);
  });

  it('names each bad field', () => {
    const bad = (route: unknown) => fields(router.validate({ routes: [{}, route] }));
    assert.deepEqual(bad({ match: { http: { pathExact: 'admin' } } }), ['routes[1].match.http.pathExact']);
    assert.deepEqual(bad({ match: { http: { pathRegex: '(' } } }), ['routes[1].match.http.pathRegex']);
    assert.deepEqual(bad({ match: { http: { pathRegex: 'a)(b' } } }), ['routes[1].match.http.pathRegex']);
    assert.deepEqual(bad({ match: { http: { pathRegex: 'x'.repeat(257) } } }), [
      'routes[1].match.http.pathRegex',
    ]);
    assert.deepEqual(bad({ match: { http: { pathExact: '/a', pathPrefix: '/b' } } }), [
      'routes[1].match.http',
    ]);
    assert.deepEqual(bad({ match: { http: { methods: ['get', 'POST'] } } }), [
      'routes[1].match.http.methods[0]',
    ]);
    assert.deepEqual(bad({ match: { http: { methods: Array(17).fill('GET') } } }), [
      'routes[1].match.http.methods',
    ]);
    assert.deepEqual(bad({ match: { http: { header: [{ exact: 'x' }] } } }), [
      'routes[1].match.http.header[0].name',
    ]);
    assert.deepEqual(bad({ match: { http: { header: [{ name: 'a b' }] } } }), [
      'routes[1].match.http.header[0].name',
    ]);
    assert.deepEqual(bad({ match: { http: { header: [{ name: 'a', exact: 'x', prefix: 'y' }] } } }), [
      'routes[1].match.http.header[0]',
    ]);
    assert.deepEqual(bad({ match: { http: { header: [{ name: 'a', invert: 'yes' }] } } }), [
      'routes[1].match.http.header[0].invert',
    ]);
    assert.deepEqual(bad({ match: { http: { queryParam: [{ name: 'q', regex: '[' }] } } }), [
      'routes[1].match.http.queryParam[0].regex',
    ]);
    assert.deepEqual(bad({ match: { http: { queryParam: [{ name: 'q', suffix: 'x' }] } } }), [
      'routes[1].match.http.queryParam[0].suffix',
    ]);
    assert.deepEqual(bad({ match: { grpc: {} } }), ['routes[1].match.grpc']);
    assert.deepEqual(bad({ destination: { service: 'Web' } }), ['routes[1].destination.service']);
    assert.deepEqual(bad({ destination: { numRetries: 11 } }), ['routes[1].destination.numRetries']);
    assert.deepEqual(bad({ destination: { retryOnStatusCodes: [503, 99] } }), [
      'routes[1].destination.retryOnStatusCodes[1]',
    ]);
    assert.deepEqual(bad({ destination: { retryOn: ['unavailable', 'reset'] } }), [
      'routes[1].destination.retryOn[1]',
    ]);
    assert.match(
      router.validate({ routes: [{ destination: { retryOn: ['UNAVAILABLE'] } }] })[0]?.message ?? '',
      /must be one of 5xx, gateway-error, connect-failure, cancelled, .*unavailable; got "UNAVAILABLE"/,
    );
    assert.deepEqual(bad({ destination: { retryOn: 'unavailable' } }), ['routes[1].destination.retryOn']);
    assert.deepEqual(bad({ destination: { retryOn: Array(17).fill('5xx') } }), [
      'routes[1].destination.retryOn',
    ]);
    assert.deepEqual(bad({ destination: { requestTimeoutMs: 0 } }), [
      'routes[1].destination.requestTimeoutMs',
    ]);
    assert.deepEqual(bad({ destination: { prefixRewrite: '/x' } }), ['routes[1].destination.prefixRewrite']);
    assert.deepEqual(bad('route'), ['routes[1]']);
    assert.deepEqual(fields(router.validate({ routes: Array(65).fill({}) })), ['routes']);
    assert.deepEqual(fields(router.validate({ route: [] })), ['route']);
  });

  it('says what to do', () => {
    assert.deepEqual(router.validate({ routes: [{ destination: { prefixRewrite: '/v2' } }] }), [
      {
        field: 'routes[0].destination.prefixRewrite',
        message:
          'needs match.http.pathPrefix or match.http.pathExact on the same route (it replaces that part)',
      },
    ]);
    assert.deepEqual(
      router.validate({ routes: [{ match: { http: { pathPrefix: '/a', pathRegex: '/b' } } }] }),
      [
        {
          field: 'routes[0].match.http',
          message: 'set at most one of pathExact, pathPrefix, pathRegex; found pathPrefix and pathRegex',
        },
      ],
    );
  });
});

describe('service-router retryBudget', () => {
  it('accepts a budget, and names each bad field', () => {
    assert.deepEqual(
      router.validate({ routes: [], retryBudget: { retryRatio: 0.1, minRetriesPerSecond: 0, ttlMs: 5_000 } }),
      [],
    );
    assert.deepEqual(
      fields(
        router.validate({ retryBudget: { retryRatio: -1, minRetriesPerSecond: 1.5, ttlMs: 500, x: 1 } }),
      ),
      ['retryBudget.x', 'retryBudget.retryRatio', 'retryBudget.minRetriesPerSecond', 'retryBudget.ttlMs'],
    );
    assert.deepEqual(fields(router.validate({ retryBudget: { retryRatio: 'all' } })), [
      'retryBudget.retryRatio',
    ]);
  });
});

describe('service-router fault', () => {
  const faultFields = (fault: unknown) => fields(router.validate({ routes: [{ fault }] }));

  it('accepts a delay, an abort by HTTP or gRPC status (number or name), or both', () => {
    for (const fault of [
      { delay: { percent: 10, fixedDelayMs: 500 } },
      { abort: { percent: 0.5, httpStatus: 503 } },
      { abort: { percent: 100, grpcStatus: 14 } },
      { abort: { percent: 100, grpcStatus: 'UNAVAILABLE', httpStatus: 429 } },
      { delay: { percent: 100, fixedDelayMs: 60_000 }, abort: { percent: 0, httpStatus: 200 } },
    ])
      assert.deepEqual(router.validate({ routes: [{ fault }] }), [], JSON.stringify(fault));
  });

  it('names each bad field', () => {
    assert.deepEqual(faultFields({}), ['routes[0].fault']);
    assert.deepEqual(faultFields('slow'), ['routes[0].fault']);
    assert.deepEqual(faultFields({ delay: { percent: 10, fixedDelayMs: 1 }, jitter: 1 }), [
      'routes[0].fault.jitter',
    ]);
    assert.deepEqual(faultFields({ delay: { fixedDelayMs: 10 } }), ['routes[0].fault.delay.percent']);
    assert.deepEqual(faultFields({ delay: { percent: 101, fixedDelayMs: 10 } }), [
      'routes[0].fault.delay.percent',
    ]);
    assert.deepEqual(faultFields({ delay: { percent: 5 } }), ['routes[0].fault.delay.fixedDelayMs']);
    assert.deepEqual(faultFields({ delay: { percent: 5, fixedDelayMs: 60_001 } }), [
      'routes[0].fault.delay.fixedDelayMs',
    ]);
    assert.deepEqual(faultFields({ delay: { percent: 5, fixedDelayMs: 0.5 } }), [
      'routes[0].fault.delay.fixedDelayMs',
    ]);
    assert.deepEqual(faultFields({ abort: { percent: 5 } }), ['routes[0].fault.abort']);
    assert.deepEqual(faultFields({ abort: { percent: 5, httpStatus: 199 } }), [
      'routes[0].fault.abort.httpStatus',
    ]);
    assert.deepEqual(faultFields({ abort: { percent: 5, grpcStatus: 0 } }), [
      'routes[0].fault.abort.grpcStatus',
    ]);
    for (const httpStatus of [204, 205, 304])
      assert.deepEqual(faultFields({ abort: { percent: 5, httpStatus } }), [
        'routes[0].fault.abort.httpStatus',
      ]);
    assert.deepEqual(faultFields({ abort: { percent: 5, grpcStatus: 'unavailable' } }), [
      'routes[0].fault.abort.grpcStatus',
    ]);
    assert.deepEqual(faultFields({ abort: { percent: Number.NaN, grpcStatus: 17 } }), [
      'routes[0].fault.abort.percent',
      'routes[0].fault.abort.grpcStatus',
    ]);
  });

  it('says what to do', () => {
    const messages = (fault: unknown) => router.validate({ routes: [{ fault }] }).map((e) => e.message);
    assert.deepEqual(messages({}), ['needs a delay, an abort or both']);
    assert.deepEqual(messages({ abort: { percent: 1 } }), [
      'needs httpStatus, grpcStatus or both (what the aborted requests get)',
    ]);
    assert.match(messages({ delay: { fixedDelayMs: 5 } })[0] ?? '', /^is required: a number from 0 to 100/);
    assert.match(
      messages({ abort: { percent: 1, grpcStatus: 'NOPE' } })[0] ?? '',
      /or its name \(CANCELLED, .*UNAUTHENTICATED\); got "NOPE"/,
    );
  });
});

describe('service-splitter', () => {
  it('accepts weights adding up to 100 with two decimals', () => {
    assert.deepEqual(splitter.validate({ splits: [{ weight: 100 }] }), []);
    assert.deepEqual(
      splitter.validate({
        splits: [
          { weight: 33.33, serviceSubset: 'v1' },
          { weight: 33.33, service: 'api-v2' },
          { weight: 33.34, service: 'api-v3', serviceSubset: 'canary' },
          { weight: 0, service: 'old' },
        ],
      }),
      [],
    );
    assert.deepEqual(splitter.validate({ splits: [{ weight: 0.07 }, { weight: 99.93 }] }), []);
  });

  it('names each bad field', () => {
    assert.deepEqual(splitter.validate({}), [
      { field: 'splits', message: 'is required: list the services or subsets and their weights' },
    ]);
    assert.deepEqual(fields(splitter.validate({ splits: [] })), ['splits']);
    assert.deepEqual(splitter.validate({ splits: [{ weight: 90 }, { weight: 5 }] }), [
      { field: 'splits', message: 'weights must add up to 100, they add up to 95' },
    ]);
    assert.deepEqual(fields(splitter.validate({ splits: [{ weight: 50.005 }, { weight: 49.995 }] })), [
      'splits[0].weight',
      'splits[1].weight',
    ]);
    assert.deepEqual(fields(splitter.validate({ splits: [{ weight: 101 }, { weight: -1 }] })), [
      'splits[0].weight',
      'splits[1].weight',
    ]);
    assert.deepEqual(fields(splitter.validate({ splits: [{ service: 'a' }] })), ['splits[0].weight']);
    assert.deepEqual(
      fields(splitter.validate({ splits: [{ weight: 100, service: '-a', serviceSubset: 'V1' }] })),
      ['splits[0].service', 'splits[0].serviceSubset'],
    );
    assert.deepEqual(fields(splitter.validate({ splits: Array(33).fill({ weight: 1 }) })), ['splits']);
  });
});

describe('service-resolver', () => {
  it('accepts subsets, failover, load balancing and timeouts', () => {
    assert.deepEqual(resolver.validate({}), []);
    assert.deepEqual(
      resolver.validate({
        defaultSubset: 'v1',
        subsets: {
          v1: { filter: { tags: ['v1'] } },
          v2: { filter: { tags: ['v2', 'canary'], meta: { version: '2', zone: '' } }, onlyPassing: true },
        },
        failover: {
          v1: { targets: [{ serviceSubset: 'v2' }, { service: 'api-dr' }] },
          '*': { targets: [{ service: 'x' }] },
        },
        loadBalancer: {
          policy: 'ring_hash',
          ringHash: { minimumRingSize: 1024, maximumRingSize: 8192 },
          hashPolicies: [{ field: 'header', fieldValue: 'x-user' }, { sourceIp: true }],
        },
        passiveHealthCheck: {
          maxFailures: 3,
          baseEjectionTimeMs: 10_000,
          maxEjectionTimeMs: 60_000,
          maxEjectionPercent: 50,
        },
        connectTimeoutMs: 2000,
        requestTimeoutMs: 30000,
      }),
      [],
    );
    assert.deepEqual(resolver.validate({ passiveHealthCheck: {} }), []);
    assert.deepEqual(resolver.validate({ redirect: { service: 'api-v2', serviceSubset: 'blue' } }), []);
  });

  it('names each bad field', () => {
    assert.deepEqual(resolver.validate({ defaultSubset: 'v3', subsets: { v1: {} } }), [
      { field: 'defaultSubset', message: 'must name a subset defined under subsets (defined subsets: v1)' },
    ]);
    assert.deepEqual(fields(resolver.validate({ subsets: { V1: {} } })), ['subsets.V1']);
    assert.deepEqual(fields(resolver.validate({ subsets: { v1: { filter: { tags: ['a b'] } } } })), [
      'subsets.v1.filter.tags[0]',
    ]);
    assert.deepEqual(fields(resolver.validate({ subsets: { v1: { filter: { meta: { k: 1 } } } } })), [
      'subsets.v1.filter.meta.k',
    ]);
    assert.deepEqual(fields(resolver.validate({ subsets: { v1: { onlyPassing: 1, only: true } } })), [
      'subsets.v1.only',
      'subsets.v1.onlyPassing',
    ]);
    const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`s${i}`, {}]));
    assert.deepEqual(fields(resolver.validate({ subsets: many })), ['subsets']);
    assert.deepEqual(resolver.validate({ redirect: { serviceSubset: 'v1' } }), [
      { field: 'redirect.service', message: 'is required: the service to send the calls to' },
    ]);
    assert.deepEqual(fields(resolver.validate({ redirect: { service: 'b' }, connectTimeoutMs: 5 })), [
      'connectTimeoutMs',
    ]);
    assert.deepEqual(fields(resolver.validate({ failover: { v9: { targets: [{ service: 'b' }] } } })), [
      'failover.v9',
    ]);
    assert.deepEqual(fields(resolver.validate({ failover: { '*': { targets: [] } } })), [
      'failover.*.targets',
    ]);
    assert.deepEqual(fields(resolver.validate({ failover: { '*': { targets: [{}] } } })), [
      'failover.*.targets[0]',
    ]);
    assert.deepEqual(
      fields(resolver.validate({ failover: { '*': { targets: Array(9).fill({ service: 'b' }) } } })),
      ['failover.*.targets'],
    );
    assert.deepEqual(fields(resolver.validate({ loadBalancer: {} })), ['loadBalancer.policy']);
    assert.deepEqual(fields(resolver.validate({ loadBalancer: { policy: 'maglev' } })), [
      'loadBalancer.policy',
    ]);
    assert.deepEqual(fields(resolver.validate({ loadBalancer: { policy: 'random', hashPolicies: [] } })), [
      'loadBalancer.hashPolicies',
    ]);
    assert.deepEqual(
      fields(
        resolver.validate({
          loadBalancer: { policy: 'ring_hash', ringHash: { minimumRingSize: 10, maximumRingSize: 5 } },
        }),
      ),
      ['loadBalancer.ringHash.minimumRingSize'],
    );
    assert.deepEqual(
      fields(
        resolver.validate({
          loadBalancer: {
            policy: 'ring_hash',
            hashPolicies: [{ field: 'body', fieldValue: 'x' }, { sourceIp: false }, { field: 'cookie' }],
          },
        }),
      ),
      [
        'loadBalancer.hashPolicies[0].field',
        'loadBalancer.hashPolicies[1].sourceIp',
        'loadBalancer.hashPolicies[2].fieldValue',
      ],
    );
    assert.deepEqual(
      fields(
        resolver.validate({
          passiveHealthCheck: {
            maxFailures: 0,
            maxEjectionPercent: 101,
            baseEjectionTimeMs: 1.5,
            interval: 1,
          },
        }),
      ),
      [
        'passiveHealthCheck.interval',
        'passiveHealthCheck.maxFailures',
        'passiveHealthCheck.baseEjectionTimeMs',
        'passiveHealthCheck.maxEjectionPercent',
      ],
    );
    assert.deepEqual(
      resolver.validate({ passiveHealthCheck: { baseEjectionTimeMs: 60_000, maxEjectionTimeMs: 1_000 } }),
      [
        {
          field: 'passiveHealthCheck.baseEjectionTimeMs',
          message: 'must not exceed maxEjectionTimeMs (1000)',
        },
      ],
    );
    assert.deepEqual(fields(resolver.validate({ passiveHealthCheck: true })), ['passiveHealthCheck']);
    // Against the defaults too (30 s base, 300 s max): nothing is silently capped.
    assert.deepEqual(resolver.validate({ passiveHealthCheck: { baseEjectionTimeMs: 600_000 } }), [
      {
        field: 'passiveHealthCheck.baseEjectionTimeMs',
        message: 'must not exceed maxEjectionTimeMs (300000, the default)',
      },
    ]);
    assert.deepEqual(resolver.validate({ passiveHealthCheck: { maxEjectionTimeMs: 10_000 } }), [
      {
        field: 'passiveHealthCheck.maxEjectionTimeMs',
        message: 'must be at least baseEjectionTimeMs (30000, the default)',
      },
    ]);
    assert.deepEqual(fields(resolver.validate({ connectTimeoutMs: 600_001, requestTimeoutMs: -1 })), [
      'connectTimeoutMs',
      'requestTimeoutMs',
    ]);
  });

  it('treats "constructor" and "__proto__" as plain names', () => {
    assert.deepEqual(resolver.validate({ defaultSubset: 'constructor' }).length, 1);
    const spec = JSON.parse('{"subsets": {"__proto__": {}}}');
    assert.deepEqual(fields(resolver.validate(spec)), ['subsets.__proto__']);
  });
});

describe('service-intentions', () => {
  it('accepts allow and deny rules for services and "*"', () => {
    assert.deepEqual(
      intentions.validate({
        sources: [
          { name: 'web', action: 'allow', description: 'the storefront reads prices' },
          { name: '*', action: 'deny' },
        ],
      }),
      [],
    );
  });

  it('names each bad field', () => {
    assert.deepEqual(fields(intentions.validate({})), ['sources']);
    assert.deepEqual(fields(intentions.validate({ sources: [] })), ['sources']);
    assert.deepEqual(
      fields(intentions.validate({ sources: Array(257).fill({ name: 'a', action: 'allow' }) })),
      ['sources'],
    );
    assert.deepEqual(
      fields(
        intentions.validate({
          sources: [
            { name: 'web', action: 'permit' },
            { action: 'deny' },
            { name: 'Web', action: 'deny', description: 'x'.repeat(513) },
            { name: 'web', action: 'deny' },
          ],
        }),
      ),
      [
        'sources[0].action',
        'sources[1].name',
        'sources[2].name',
        'sources[2].description',
        'sources[3].name',
      ],
    );
    assert.deepEqual(
      intentions.validate({
        sources: [
          { name: 'a', action: 'allow' },
          { name: 'a', action: 'deny' },
        ],
      }),
      [{ field: 'sources[1].name', message: 'duplicates sources[0]; keep one rule per source' }],
    );
  });

  it('accepts L7 permissions, and names each bad one', () => {
    assert.deepEqual(
      intentions.validate({
        sources: [
          {
            name: 'admin',
            permissions: [
              { action: 'deny', http: { pathPrefix: '/admin/', methods: ['DELETE'] } },
              { action: 'allow', http: { header: [{ name: 'x-team', exact: 'ops' }] } },
              { action: 'allow', http: {} },
            ],
          },
          { name: '*', action: 'deny' },
        ],
      }),
      [],
    );
    const bad = (source: unknown) => fields(intentions.validate({ sources: [source] }));
    assert.deepEqual(bad({ name: 'web', action: 'allow', permissions: [{ action: 'allow', http: {} }] }), [
      'sources[0]',
    ]);
    assert.deepEqual(bad({ name: 'web', permissions: [] }), ['sources[0].permissions']);
    assert.deepEqual(bad({ name: 'web', permissions: Array(33).fill({ action: 'allow', http: {} }) }), [
      'sources[0].permissions',
    ]);
    assert.deepEqual(
      bad({
        name: 'web',
        permissions: [
          { http: {} },
          { action: 'allow' },
          { action: 'allow', http: { pathPrefix: 'admin' } },
          { action: 'allow', http: { pathRegex: '(' } },
          { action: 'allow', http: { methods: ['get'] } },
          { action: 'allow', http: {}, when: 'never' },
        ],
      }),
      [
        'sources[0].permissions[0].action',
        'sources[0].permissions[1].http',
        'sources[0].permissions[2].http.pathPrefix',
        'sources[0].permissions[3].http.pathRegex',
        'sources[0].permissions[4].http.methods[0]',
        'sources[0].permissions[5].when',
      ],
    );
    assert.match(
      intentions.validate({ sources: [{ name: 'web', action: 'allow', permissions: [] }] })[0]?.message ?? '',
      /either action .* or permissions .*, not both/,
    );
    // As Consul's: no query parameters in a permission (servers read repeats differently).
    assert.deepEqual(
      bad({ name: 'web', permissions: [{ action: 'deny', http: { queryParam: [{ name: 'debug' }] } }] }),
      ['sources[0].permissions[0].http.queryParam'],
    );
  });

  it('refuses permissions on the "*" entry, as Consul does, when the entry is written', () => {
    const spec = { sources: [{ name: 'web', permissions: [{ action: 'allow', http: {} }] }] };
    assert.deepEqual(checkSpec('service-intentions', spec, 'spec', 'api'), { spec });
    const refused = checkSpec('service-intentions', spec, 'spec', '*');
    assert.equal('field' in refused ? refused.field : '', 'spec.sources[0].permissions');
    assert.match('message' in refused ? refused.message : '', /not allowed on the "\*" entry/);
    assert.deepEqual(
      checkSpec('service-intentions', { sources: [{ name: 'web', action: 'allow' }] }, 'spec', '*'),
      {
        spec: { sources: [{ name: 'web', action: 'allow' }] },
      },
    );
  });
});

describe('mesh', () => {
  it('takes http.incoming.requestNormalization.headersWithUnderscoresAction, as Consul’s', () => {
    const rn = (v: unknown) => ({
      http: { incoming: { requestNormalization: { headersWithUnderscoresAction: v } } },
    });
    for (const v of ['ALLOW', 'REJECT_REQUEST', 'DROP_HEADER']) assert.deepEqual(mesh.validate(rn(v)), []);
    assert.deepEqual(fields(mesh.validate(rn('drop'))), [
      'http.incoming.requestNormalization.headersWithUnderscoresAction',
    ]);
    assert.match(
      mesh.validate(rn('drop'))[0]?.message ?? '',
      /must be one of ALLOW, REJECT_REQUEST, DROP_HEADER/,
    );
    assert.deepEqual(fields(mesh.validate({ http: { outgoing: {} } })), ['http.outgoing']);
    assert.deepEqual(
      fields(mesh.validate({ http: { incoming: { requestNormalization: { mergeSlashes: true } } } })),
      ['http.incoming.requestNormalization.mergeSlashes'],
    );
    assert.deepEqual(fields(mesh.validate({ http: 'strict' })), ['http']);
  });

  it('accepts allow and deny as the default intention', () => {
    assert.deepEqual(mesh.validate({}), []);
    assert.deepEqual(mesh.validate({ defaultIntention: 'deny' }), []);
    assert.deepEqual(fields(mesh.validate({ defaultIntention: 'block', tls: {} })), [
      'tls',
      'defaultIntention',
    ]);
  });
});
