// The official client, unchanged (its browser ESM build, served from node_modules), pointed at
// Miroir's Envoy listener, another origin than this page's: every call is a CORS request.
import { Meilisearch } from "./meilisearch/index.js";

const params = new URLSearchParams(location.search);
const client = new Meilisearch({ host: params.get("host"), apiKey: params.get("key") });
const uid = params.get("index");
const status = document.getElementById("status");

const MOVIES = [
  { id: 1, title: "Carol", genre: "drama", year: 2015 },
  { id: 2, title: "Wonder Woman", genre: "action", year: 2017 },
  { id: 3, title: "Life of Pi", genre: "drama", year: 2012 },
  { id: 4, title: "Mad Max: Fury Road", genre: "action", year: 2015 },
  { id: 5, title: "Moana", genre: "animation", year: 2016 },
  { id: 6, title: "Philadelphia", genre: "drama", year: 1993 },
  { id: 7, title: "The Mirror", genre: "drama", year: 1975 },
  { id: 8, title: "Mirror Mirror", genre: "comedy", year: 2012 },
];

async function setUp() {
  const created = await client.createIndex(uid, { primaryKey: "id" }).waitTask();
  const index = client.index(uid);
  const filterable = await index.updateFilterableAttributes(["genre", "year"]).waitTask();
  const added = await index.addDocuments(MOVIES).waitTask();
  // A filtered, faceted search, and a document read back by id.
  const dramas = await index.search("", { filter: "genre = drama", facets: ["genre"], limit: 20 });
  const doc = await index.getDocument(7);
  const stats = await index.getStats();
  return {
    origin: location.origin,
    tasks: [created, filterable, added].map((t) => ({ uid: t.uid, type: t.type, status: t.status })),
    dramas: dramas.hits.map((h) => h.id).sort((a, b) => a - b),
    dramaTotal: dramas.estimatedTotalHits,
    genreFacet: dramas.facetDistribution && dramas.facetDistribution.genre,
    document: { id: doc.id, title: doc.title },
    numberOfDocuments: stats.numberOfDocuments,
  };
}

// The search box: every keystroke searches, as an instant-search page does.
async function search() {
  const q = document.getElementById("q").value;
  const result = await client.index(uid).search(q, { limit: 10 });
  if (document.getElementById("q").value !== q) return;
  document.getElementById("estimated").textContent = `${result.estimatedTotalHits} for "${q}"`;
  document.getElementById("hits").replaceChildren(
    ...result.hits.map((hit) => {
      const li = document.createElement("li");
      li.dataset.id = String(hit.id);
      li.textContent = `${hit.title} (${hit.year})`;
      return li;
    }),
  );
  document.body.dataset.searched = q;
}

setUp().then(
  (result) => {
    window.setUpResult = result;
    status.textContent = "ready";
    const box = document.getElementById("q");
    box.disabled = false;
    box.addEventListener("input", () => search().catch((e) => (status.textContent = `search failed: ${e}`)));
    document.getElementById("search").addEventListener("submit", (e) => e.preventDefault());
  },
  (error) => {
    window.setUpError = `${error.name}: ${error.message}${error.cause ? ` (cause: ${error.cause})` : ""}`;
    status.textContent = `failed: ${window.setUpError}`;
  },
);
