// The system storywire replaces: the seed's Socket.IO 4.8 real-time layer, as its design note describes it
// (/work/shared/seed/000_*.md). JWT verified in the handshake middleware (`auth.token`), a personal room
// `user:<id>` per socket, `io.emit` for stories, `io.to(room).emit` for notifications, ping -> pong.
// Socket.IO defaults otherwise (polling + websocket allowed, 25 s ping interval, no compression).
// The JWT is verified with jose, the library storywire uses, so handshake costs compare the transports.
//
// Env: PORT (required), HOST (127.0.0.1), JWT_SECRET (required, HS256 key).
import { createServer } from 'node:http';
import { jwtVerify } from 'jose';
import { Server } from 'socket.io';

const port = Number(process.env.PORT);
const host = process.env.HOST || '127.0.0.1';
const secret = process.env.JWT_SECRET;
if (!Number.isInteger(port) || !secret) {
  process.stderr.write('socketio-seed: PORT and JWT_SECRET are required\n');
  process.exit(1);
}
const key = new TextEncoder().encode(secret);

const httpServer = createServer();
const io = new Server(httpServer, { cors: { origin: '*' } });

io.use(async (socket, next) => {
  const token = socket.handshake.auth?.token ?? socket.handshake.query?.token;
  if (!token) return next(new Error('Authentication error: no token'));
  try {
    const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'] });
    socket.data.userId = String(payload.sub);
    socket.data.roles = Array.isArray(payload.roles) ? payload.roles : [];
    next();
  } catch {
    next(new Error('Authentication error: invalid token'));
  }
});

io.on('connection', (socket) => {
  const userId = socket.data.userId;
  socket.join(`user:${userId}`);

  socket.on('ping', (data) => {
    socket.emit('pong', { id: data?.id, timestamp: Date.now() });
  });

  socket.on('send:notification', (data) => {
    if (!data || data.userId === undefined || !data.notification) return;
    io.to(`user:${data.userId}`).emit('notification:received', { ...data.notification, from: userId, timestamp: Date.now() });
  });

  socket.on('story:published', (story) => {
    if (!socket.data.roles.includes('stories:publish')) return socket.emit('error', { message: 'forbidden' });
    io.emit('story:new', { ...story, authorId: userId, timestamp: Date.now() });
  });
});

httpServer.listen(port, host);
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
