// Data and waiting shared by the scenarios: realistic todos (uuid and legacy
// "todo-N" ids, date-only due dates, ISO timestamps, quotes and emoji in text)
// and a poll for writes that a library makes after a timer or a microtask.

export const TODOS = [
  {
    id: "3f2c9a1e-8b4d-4c6e-9f1a-2b7d5e8c0a13",
    title: "Renew passport before the Lisbon trip",
    done: false,
    priority: 1,
    dueDate: "2025-06-09",
    tags: ["errands", "travel"],
    updatedAt: "2025-06-01T08:15:30.000Z",
  },
  {
    id: "todo-3",
    title: 'Email Sam the "Q2 budget" numbers',
    done: true,
    priority: 2,
    dueDate: "2025-06-03",
    tags: ["work"],
    updatedAt: "2025-06-02T16:42:05.120Z",
  },
  {
    id: "b6e0d7a2-51f3-4a8e-8c2d-9e4f7a1b3c55",
    title: "Book dentist appointment",
    done: false,
    priority: 3,
    dueDate: "2025-06-20",
    tags: [],
    updatedAt: "2025-06-04T09:00:00.000Z",
  },
  {
    id: "todo-7",
    title: "Water the plants 🌱 (balcony + kitchen)",
    done: false,
    priority: 2,
    dueDate: null,
    tags: ["home"],
    updatedAt: "2025-06-05T18:30:12.345Z",
  },
  {
    id: "e91d4b70-2c8a-4f16-b3e5-7a0c9d2f6b84",
    title: "Résumé: update the 2024–2025 section",
    done: true,
    priority: 1,
    dueDate: "2025-05-30",
    tags: ["career", "writing"],
    updatedAt: "2025-05-29T22:05:47.901Z",
  },
];

/** Resolve once `predicate()` is true, polling; reject after `timeout` ms. */
export function until(predicate, timeout = 5000) {
  const deadline = Date.now() + timeout;
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (predicate()) resolve();
      else if (Date.now() > deadline) reject(new Error(`condition not met after ${timeout} ms: ${predicate}`));
      else setTimeout(poll, 10);
    };
    poll();
  });
}
