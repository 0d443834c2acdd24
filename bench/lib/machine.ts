// What a result was measured on: printed in every JSON line.
import os from 'node:os';
import { maxOpenFiles } from './proc.js';

export interface Machine {
  node: string;
  v8: string;
  cpu: string;
  cores: number;
  platform: string;
  arch: string;
  kernel: string;
  memGiB: number;
  maxOpenFiles: number;
  loadavg1: number;
}

export function machineInfo(): Machine {
  const cpus = os.cpus();
  return {
    node: process.version,
    v8: process.versions.v8,
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    platform: process.platform,
    arch: process.arch,
    kernel: os.release(),
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    maxOpenFiles: maxOpenFiles('self'),
    loadavg1: Math.round(os.loadavg()[0]! * 100) / 100,
  };
}
