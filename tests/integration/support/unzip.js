// Extracts a zip (a .vsix) the way the agent unpacks a task: file contents only, so every file
// is written with default permissions and loses its executable bit.
//   node unzip.js ARCHIVE DEST
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const [archive, dest] = process.argv.slice(2);
const bytes = fs.readFileSync(archive);
let eocd = bytes.length - 22;
while (bytes.readUInt32LE(eocd) !== 0x06054b50) eocd--;
const count = bytes.readUInt16LE(eocd + 10);
let at = bytes.readUInt32LE(eocd + 16);
for (let i = 0; i < count; i++) {
  const method = bytes.readUInt16LE(at + 10);
  const compressedSize = bytes.readUInt32LE(at + 20);
  const nameLength = bytes.readUInt16LE(at + 28);
  const skip = nameLength + bytes.readUInt16LE(at + 30) + bytes.readUInt16LE(at + 32);
  const localHeader = bytes.readUInt32LE(at + 42);
  const name = bytes.toString('utf8', at + 46, at + 46 + nameLength);
  at += 46 + skip;

  const target = path.join(dest, name);
  if (!target.startsWith(path.resolve(dest) + path.sep)) throw new Error(`unsafe entry ${name}`);
  if (name.endsWith('/')) {
    fs.mkdirSync(target, { recursive: true });
    continue;
  }
  const start =
    localHeader + 30 + bytes.readUInt16LE(localHeader + 26) + bytes.readUInt16LE(localHeader + 28);
  const data = bytes.subarray(start, start + compressedSize);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.writeFileSync(target, method === 8 ? zlib.inflateRawSync(data) : data);
}
