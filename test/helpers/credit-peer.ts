// Starts the credit-controlled AMQP 1.0 peer (credit-peer-child.ts) in a child process and drives it:
// grant(n) gives every open sending link n credits, state() says what arrived. An answer comes after
// everything the peer received before the request (child-peer.ts).

import { fileURLToPath } from 'node:url';
import { forkChildPeer } from './child-peer.js';

export interface CreditPeerState {
  /** message ids in order of arrival */
  received: string[];
  /** links the client attached to send on */
  attached: number;
}

export interface CreditPeer {
  readonly url: string;
  grant(n: number): Promise<void>;
  state(): Promise<CreditPeerState>;
  close(): Promise<void>;
}

const CHILD = fileURLToPath(new URL('./credit-peer-child.ts', import.meta.url));

export async function startCreditPeer(): Promise<CreditPeer> {
  const peer = await forkChildPeer<{ state?: CreditPeerState }>(CHILD, 'the credit peer process');
  return {
    url: `amqp://peer:peer@127.0.0.1:${peer.port}`,
    grant: async (n) => void (await peer.ask('grant', { n })),
    state: async () => (await peer.ask('state')).state as CreditPeerState,
    close: () => peer.close(),
  };
}
