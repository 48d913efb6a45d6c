// Who is signed in and which workspaces they see, shared by the shell and the pages.

import { get, listOf } from './api.js';

/** The signed-in user, the organisation, the workspaces (filled by the shell). */
export const session = { user: null, organisation: null, organisations: [], workspaces: [] };

export const wsId = (w) => String(w?.id ?? w?.workspaceId ?? w?.uuid ?? '');
export const wsName = (w) => w?.name || w?.workspaceName || 'Untitled workspace';
export const currentUserEmail = () => session.user?.email || '';
export const currentRole = () => String(session.user?.role || '').toLowerCase();
export const canManage = () => ['owner', 'admin'].includes(currentRole());

export async function loadWorkspaces() {
  const data = await get('/api/v1/workspace');
  session.workspaces = listOf(data, 'workspaces', 'data', 'items').filter((w) => wsId(w));
  return session.workspaces;
}
