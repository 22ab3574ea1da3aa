// The AgentOrch@1 entry point: starts the agent-orch binary built for this agent's platform.
//
// Azure Pipelines has no native-binary handler on Linux or macOS, so a Node handler runs this
// file. It deliberately does not import azure-pipelines-task-lib: importing it deletes INPUT_*,
// ENDPOINT_AUTH_* and SECRET_* from the environment, and the binary reads those itself.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

// The agent's escaping for logging command data (see src/ado/logging.rs).
function escapeData(text) {
  return String(text)
    .replace(/%/g, '%AZP25')
    .replace(/;/g, '%3B')
    .replace(/\r/g, '%0D')
    .replace(/\n/g, '%0A')
    .replace(/]/g, '%5D');
}

function fail(message) {
  process.stdout.write(`##vso[task.logissue type=error]${escapeData(message)}\n`);
  process.stdout.write(`##vso[task.complete result=Failed]${escapeData(message)}\n`);
  process.exitCode = 1;
}

function binaryPath() {
  const platform = `${process.platform}-${process.arch}`;
  const name = process.platform === 'win32' ? 'agent-orch.exe' : 'agent-orch';
  return { platform, file: path.join(__dirname, 'bin', platform, name) };
}

function main() {
  const binary = binaryPath();
  if (!fs.existsSync(binary.file)) {
    const shipped = fs.existsSync(path.join(__dirname, 'bin'))
      ? fs.readdirSync(path.join(__dirname, 'bin')).join(', ')
      : 'none';
    fail(
      `agent-orch has no binary for this agent's platform \`${binary.platform}\` ` +
        `(looked for ${binary.file}; this task ships: ${shipped})`
    );
    return;
  }

  if (process.platform !== 'win32') {
    // A .vsix is a zip: unpacking it on the agent drops the executable bit.
    try {
      fs.chmodSync(binary.file, 0o755);
    } catch (error) {
      fail(`failed to make ${binary.file} executable: ${error.message}`);
      return;
    }
  }

  // On cancel the agent signals this process; pass the signal on so the binary can stop its
  // steps, roll back and write its reports. The shim exits when the child does. The handlers go
  // in before the spawn: a signal that lands between the two would otherwise kill the shim with
  // the default action and orphan the binary. Node runs them from the event loop, after `main`
  // returns, so `child` is set by then.
  let child = null;
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      if (child !== null && child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
      }
    });
  }

  // The environment is passed on as it is: the binary reads its inputs from INPUT_*.
  child = spawn(binary.file, ['task'], { stdio: 'inherit', env: process.env });

  let failedToStart = false;
  child.on('error', (error) => {
    failedToStart = true;
    fail(`failed to start ${binary.file}: ${error.message}`);
  });

  child.on('exit', (code, signal) => {
    if (failedToStart) {
      return;
    } else if (code !== null) {
      process.exitCode = code;
    } else {
      // Killed by a signal: exit non-zero the way a shell reports it (128 + signal number).
      process.exitCode = 128 + (os.constants.signals[signal] || 0);
    }
  });
}

main();
