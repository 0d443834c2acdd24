import v8 from 'node:v8';
setTimeout(() => {
  const ns = v8.getHeapSpaceStatistics().find(s => s.space_name === 'new_space');
  process.stderr.write(`SPY new_space ${(ns.space_size/1048576).toFixed(1)} MiB; heap used ${(v8.getHeapStatistics().used_heap_size/1048576).toFixed(1)} MiB; rss ${(process.memoryUsage().rss/1048576).toFixed(1)}\n`);
  process.exit(0);
}, 1500);
