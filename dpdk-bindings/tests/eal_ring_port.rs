//! Drives the safe layer against a real EAL: a mempool, rings, and a net_ring port. The EAL
//! can be initialised once per process, so this file holds a single test.
//! Needs hugepages (`.ci/run` and `scripts/setup.sh` reserve them).

use dpdk::{Eal, Mbuf, MbufBurst, Mempool, Port, PortConf, Ring};

fn frame(i: u8) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[12] = 0x08;
    f[14] = i;
    f[63] = i;
    f
}

#[test]
fn eal_mempool_ring_and_ring_port() {
    let eal = Eal::init(&[
        "--in-memory",
        "-m",
        "64",
        "--no-pci",
        "-l",
        "0",
        "--log-level=*:warning",
    ])
    .expect("EAL init (are hugepages reserved? see scripts/setup.sh)");
    assert!(
        Eal::init(&["--in-memory"]).is_err(),
        "second init must fail"
    );
    assert!(eal.lcore_enabled(eal.main_lcore()));
    assert!(dpdk::tsc_hz() > 0);

    let pool = Mempool::pktmbuf("test_pool", 1023, 0, 2048 + 128, None).expect("mempool");
    let before = pool.available();

    // Mbuf: alloc, grow, write, prepend/adj, free on drop.
    {
        let mut m = pool.alloc().expect("alloc");
        assert_eq!(m.len(), 0);
        assert!(m.set_len(64));
        m.data_mut().copy_from_slice(&frame(7));
        assert_eq!(m.data()[14], 7);
        let head = m.headroom();
        assert!(m.prepend(20).is_some());
        assert_eq!(m.len(), 84);
        assert_eq!(m.headroom(), head - 20);
        assert!(m.adj(20));
        assert_eq!(m.data(), &frame(7));
        assert!(
            m.prepend(u16::MAX).is_none(),
            "prepend beyond headroom must fail"
        );
        assert_eq!(m.len(), 64);
        assert_eq!(pool.available(), before - 1);
    }
    assert_eq!(pool.available(), before, "dropped mbuf returns to the pool");

    // Bulk allocation and the length set in Rust.
    {
        let mut b: MbufBurst = MbufBurst::new();
        assert!(pool.alloc_bulk(&mut b, 20));
        assert_eq!(b.len(), 20);
        assert!(pool.alloc_bulk(&mut b, 100), "capped at the burst's room");
        assert!(b.is_full());
        assert_eq!(pool.available(), before - 32);
        for mut m in b.drain() {
            assert!(m.reset_len(64));
            assert_eq!((m.len(), m.pkt_len()), (64, 64));
            m.data_mut().copy_from_slice(&frame(3));
            assert!(!m.reset_len(1 << 15), "beyond the buffer");
            assert_eq!(m.len(), 64);
            assert!(m.reset_len(60));
            assert_eq!(m.data(), &frame(3)[..60]);
        }
        let mut huge: MbufBurst<2048> = MbufBurst::new();
        assert!(
            !pool.alloc_bulk(&mut huge, 2048),
            "more than the pool holds"
        );
        assert!(huge.is_empty());
    }
    assert_eq!(pool.available(), before);

    // A ring port: frames enqueued on the rx ring come out of rx_burst; tx_burst lands them in
    // the tx ring unchanged.
    let rx_ring: Ring<Mbuf> = Ring::new("test_rx", 256, None).expect("ring");
    let tx_ring: Ring<Mbuf> = Ring::new("test_tx", 256, None).expect("ring");
    assert_eq!(rx_ring.capacity(), 255);
    let mut port = Port::from_rings("net_ring_test", &[&rx_ring], &[&tx_ring]).expect("port");
    let info = port.info().expect("info");
    assert_eq!(info.driver, "net_ring");
    port.configure_and_start(&PortConf::default(), &pool)
        .expect("configure");
    assert!(port.link().expect("link").up);
    let mut rxq = port.rx_queue(0).expect("rx queue");
    assert!(port.rx_queue(0).is_none(), "a queue is handed out once");
    let mut txq = port.tx_queue(0).expect("tx queue");

    for i in 0..40u8 {
        let mut m = pool.alloc().expect("alloc");
        assert!(m.set_len(64));
        m.data_mut().copy_from_slice(&frame(i));
        rx_ring.enqueue(m).expect("enqueue");
    }
    let mut burst: MbufBurst = MbufBurst::new();
    let n = rxq.rx_burst(&mut burst);
    assert_eq!(n, 32, "a burst holds 32");
    assert!(burst.is_full());
    let (sent, bytes) = txq.tx_burst(&mut burst);
    assert_eq!(bytes, 32 * 64);
    assert_eq!(sent, 32);
    assert!(burst.is_empty());
    assert_eq!(rxq.rx_burst(&mut burst), 8);
    assert_eq!(txq.tx_burst(&mut burst), (8, 8 * 64));
    assert_eq!(tx_ring.len(), 40);
    let mut out: MbufBurst<64> = MbufBurst::new();
    assert_eq!(tx_ring.dequeue_burst(&mut out), 40);
    for (i, m) in out.drain().enumerate() {
        assert_eq!(
            m.data(),
            &frame(i as u8),
            "frame {i} unchanged and in order"
        );
    }
    let stats = port.stats().expect("stats");
    assert_eq!(stats.ipackets, 40);
    assert_eq!(stats.opackets, 40);
    assert_eq!(stats.xdp, None, "no AF_XDP statistics on a net_ring port");
    assert!(port.xdp_sockets().is_empty() && port.xdp_iface().is_none());

    // Boxed messages through a ring.
    let msgs: Ring<Box<u64>> = Ring::new("test_msgs", 4, None).expect("ring");
    for v in 0..3u64 {
        msgs.enqueue(Box::new(v)).expect("room");
    }
    assert_eq!(
        *msgs
            .enqueue(Box::new(9))
            .expect_err("full ring gives the item back"),
        9
    );
    assert_eq!(msgs.dequeue().map(|b| *b), Some(0));

    drop(port);
    drop(rx_ring);
    drop(tx_ring);
    assert_eq!(pool.available(), before, "every mbuf is back in the pool");
    drop(msgs);
    drop(pool);
    drop(eal);
}
