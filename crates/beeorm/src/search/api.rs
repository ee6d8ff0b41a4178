//! The engine's search calls: [`Engine::text_search`], [`Engine::text_search_ids`]
//! and [`Engine::reindex`].

use super::backend::SearchBackend;
use super::{ReindexProgress, SearchHits, SearchIndex, SearchQuery};
use crate::{Engine, Entity, Error, Pager, Result, Tracked};

impl Engine {
    /// One page of the IDs of the `E`s matching `query`, best first (or in the
    /// query's sort order), and how many match in all.
    ///
    /// Errors: [`Error::NotSearchable`] when `E` has no search index,
    /// [`Error::SearchQuery`] for a text that is not valid in the query language,
    /// [`Error::SearchField`] for a filter or sort that names an unknown field or
    /// does not fit its kind, [`Error::Search`] when the engine fails.
    ///
    /// ```no_run
    /// # use beeorm::prelude::*;
    /// # use beeorm::search::{SearchQuery, SortOrder};
    /// # #[derive(Entity)] #[orm(search)] struct User { id: u64, #[orm(searchable)] name: String, #[orm(sortable)] age: u8 }
    /// # async fn demo(engine: &Engine) -> beeorm::Result<()> {
    /// let q = SearchQuery::new("ali").range("age", 18.0..).sort_by("age", SortOrder::Asc);
    /// let hits = engine.text_search_ids::<User>(&q, Pager::new(1, 20)).await?;
    /// println!("{} of {}", hits.ids.len(), hits.total);
    /// # Ok(()) }
    /// ```
    pub async fn text_search_ids<E: Entity>(
        &self,
        query: &SearchQuery,
        pager: Pager,
    ) -> Result<SearchHits> {
        let (index, backend) = self.search_index_of::<E>()?;
        let persian = self.registry().hooks().persian_params;
        let compiled = super::compile::compile(index, query, pager, persian)?;
        backend.search(index, &compiled).await
    }

    /// [`Engine::text_search_ids`], then the entities through the normal read path
    /// ([`Engine::load_by_ids`]: the caches apply), in the order found. A found ID
    /// whose row no longer loads (deleted since it was indexed) is left out and not
    /// counted in the total.
    pub async fn text_search<E: Entity>(
        &self,
        query: &SearchQuery,
        pager: Pager,
    ) -> Result<(Vec<Tracked<E>>, u64)> {
        let hits = self.text_search_ids::<E>(query, pager).await?;
        if hits.ids.is_empty() {
            return Ok((Vec::new(), hits.total));
        }
        let (rows, missing) = self.load_by_ids::<E>(&hits.ids).await?;
        Ok((rows, hits.total.saturating_sub(missing.len() as u64)))
    }

    /// How many documents `E`'s search index holds (every indexed row: for checks
    /// after a reindex, and stats).
    pub async fn search_index_len<E: Entity>(&self) -> Result<u64> {
        let (index, backend) = self.search_index_of::<E>()?;
        backend.count(index).await
    }

    /// `E`'s search index and the backend of its pool; [`Error::NotSearchable`] when
    /// `E` has none.
    fn search_index_of<E: Entity>(
        &self,
    ) -> Result<(&SearchIndex, &std::sync::Arc<dyn SearchBackend>)> {
        let registry = self.registry();
        let index = registry
            .table_schema::<E>()?
            .search_index()
            .ok_or_else(|| Error::NotSearchable(E::TYPE_NAME.to_string()))?;
        Ok((index, super::sync::backend(registry, index)?))
    }

    /// Rebuilds `E`'s search index: drops and creates it, then indexes every row
    /// (fake-deleted ones left out) in ID order, 1,000 per batch, calling `progress`
    /// before the first batch and after each. Returns how many rows were indexed.
    /// Run it after [`Error::CommittedButNotIndexed`], or to fill an index created
    /// over existing rows (the search alters do it for you).
    pub async fn reindex<E: Entity>(
        &self,
        mut progress: impl FnMut(ReindexProgress) + Send,
    ) -> Result<u64> {
        let schema = self.registry().table_schema::<E>()?;
        super::sync::reindex(self, schema, &mut progress).await
    }
}
