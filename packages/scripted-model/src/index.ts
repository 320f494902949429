export * from './scripted-server.ts';
