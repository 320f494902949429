/**
 * A scripted Anthropic Messages API server on loopback for offline tests of agents: the server,
 * the script types and the helpers that build responses. Every name is listed here on purpose;
 * test/boundaries.test.ts checks that each one is used or meant for users.
 */
export {
  advisorIteration,
  advisorResult,
  executorIteration,
  passthrough,
  type ReceivedRequest,
  type ReceivedToolResult,
  type Script,
  type ScriptContext,
  type ScriptedBlock,
  type ScriptedError,
  type ScriptedResponse,
  type ScriptedTurn,
  type ScriptedUsage,
  type StopReason,
  sequenceScript,
  serverToolUse,
  text,
  thinking,
  toolUse,
} from './script.ts';
export { type ScriptedModel, type ScriptedModelOptions, startScriptedModel } from './scripted-server.ts';
export { type ToolCall, type ToolTurn, type ToolTurnsOptions, toolTurnsScript } from './tool-turns.ts';
