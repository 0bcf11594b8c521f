// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API
// installed before the library's modules evaluate; ESM evaluates imports in order, so this module is
// the one way in. It also points the library at Node's WebCrypto once, for every caller.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };
