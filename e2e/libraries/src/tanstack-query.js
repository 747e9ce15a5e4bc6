// TanStack Query: the whole QueryClient persisted by persistQueryClient with
// the sync storage persister (key "REACT_QUERY_OFFLINE_CACHE"), and one query
// fetched through the experimental per-query persister, which writes its own
// "tanstack-query-<queryHash>" key.
import { QueryClient } from "@tanstack/query-core";
import { experimental_createQueryPersister, persistQueryClient } from "@tanstack/query-persist-client-core";
import { createSyncStoragePersister } from "@tanstack/query-sync-storage-persister";
import { TODOS, until } from "./common/fixtures.js";

const CACHE_KEY = "REACT_QUERY_OFFLINE_CACHE";
const OPEN_TODOS = ["todos", { status: "open" }];

const queryPersister = experimental_createQueryPersister({ storage: window.localStorage });
let queryClient;

async function boot() {
  if (!queryClient) {
    queryClient = new QueryClient({ defaultOptions: { queries: { gcTime: 24 * 60 * 60 * 1000 } } });
    const persister = createSyncStoragePersister({ storage: window.localStorage, key: CACHE_KEY });
    const [, restored] = persistQueryClient({ queryClient, persister });
    await restored;
  }
}

async function seed() {
  await boot();
  queryClient.setQueryData(["todos"], TODOS);
  queryClient.setQueryData(
    ["projects"],
    [
      { id: 1, name: "Home", archived: false },
      { id: 2, name: "Work", archived: false },
    ],
  );
  queryClient.setQueryData(["user", 1], { id: 1, name: "Ada Lovelace", email: "ada@example.com", roles: ["admin"] });
  await queryClient.fetchQuery({
    queryKey: OPEN_TODOS,
    queryFn: async () => TODOS.filter((todo) => !todo.done),
    persister: queryPersister.persisterFn,
  });
  // Both persisters write later: the per-query one in a scheduled task, the
  // sync storage one throttled (one second by default).
  const perQueryKey = `tanstack-query-${JSON.stringify(OPEN_TODOS)}`;
  await until(() => localStorage.getItem(perQueryKey) !== null);
  await until(() => localStorage.getItem(CACHE_KEY)?.includes('"status":"open"'));
}

window.libraryScenario = { seed, boot };
