// Tests and tools share one way to find a free port.
export { freePort } from '../net/free-port.ts';
