// The routing core: discovery chains (where calls to a service go) and intentions (whether they
// may go). Pure: configuration and random numbers in, decisions out.
export {
  CHAIN_LIMITS,
  type ChainTarget,
  type CompiledChain,
  type CompiledRoute,
  compileChain,
  fallbackChain,
  isL7,
  type Lookup,
  type NextHop,
  type RequestInfo,
  type RouteDecision,
  type WeightedTarget,
} from './chain.js';
export {
  decideIntention,
  decideIntentionFromRows,
  INTENTION_PRECEDENCE,
  type IntentionDecision,
  type IntentionRow,
  intentionPrecedence,
  listIntentions,
} from './intentions.js';
export { compileMatch, headerValue, parseQuery, rewritePath } from './match.js';
export {
  ChainRouter,
  type ConnectionDecision,
  type FailoverResult,
  inSubset,
  instancesFor,
  pickSplit,
  resolveWithFailover,
  type SubsetView,
} from './route.js';
