/**
 * pino JSON logs. Secrets never reach a log line: the redaction list covers the places tokens
 * travel (the Copilot `connect` token, GitHub and provider keys, auth headers and cookies).
 */
import { type Logger, pino } from 'pino';

export const REDACTED_PATHS = [
  'token',
  '*.token',
  'params.token',
  '*.params.token',
  'gitHubToken',
  '*.gitHubToken',
  '*.params.gitHubToken',
  'apiKey',
  '*.apiKey',
  '*.provider.apiKey',
  '*.params.provider.apiKey',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
];

export function createLogger(options: {
  level: string;
  instanceId: string;
  destination?: pino.DestinationStream;
}): Logger {
  return pino(
    {
      level: options.level,
      base: { instance: options.instanceId },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination,
  );
}

export type { Logger };
