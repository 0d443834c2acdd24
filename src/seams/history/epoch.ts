// Epochs: the name of one lifetime of a topic's history, told to clients with every position.
import { randomBytes } from 'node:crypto';

// An epoch only has to differ between two lifetimes of a topic's history: a random prefix drawn once per
// process (48 bits, so two processes or two runs do not share one) and a counter. randomBytes for every new
// topic was ~18 us of the first connection of every user (profiled). Always [A-Za-z0-9_-]: 8 characters of
// prefix and the counter in base 36, at most 15 characters below 36^7 epochs per process.
const EPOCH_PREFIX = randomBytes(6).toString('base64url');
let epochs = 0;

export const newEpoch = (): string => `${EPOCH_PREFIX}${(++epochs).toString(36)}`;
