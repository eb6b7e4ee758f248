pub mod logtail;
