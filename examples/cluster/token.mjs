// Prints an HS256 token for the example: node examples/cluster/token.mjs <user> [permission ...]
import { SignJWT } from 'jose';

const [user = 'demo', ...scope] = process.argv.slice(2);
const key = new TextEncoder().encode(process.env.JWT_SECRET);
const jwt = new SignJWT({ scope: scope.join(' ') }).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setIssuedAt().setExpirationTime('24h');
process.stdout.write(`${await jwt.sign(key)}\n`);
