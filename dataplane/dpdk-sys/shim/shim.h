/* C shim over DPDK 22.11's static inline functions, so that Rust can call them.
 * Every function is a thin, non-inline wrapper with a tarte_ prefix. */
#ifndef TARTE_DPDK_SHIM_H
#define TARTE_DPDK_SHIM_H

#include <stdint.h>
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

uint16_t tarte_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                                struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t tarte_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                                struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

struct rte_mbuf *tarte_rte_pktmbuf_alloc(struct rte_mempool *mp);
int tarte_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                 unsigned int count);
void tarte_rte_pktmbuf_free(struct rte_mbuf *m);
void tarte_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);

void *tarte_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t tarte_rte_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t tarte_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
void tarte_rte_pktmbuf_set_data_len(struct rte_mbuf *m, uint16_t len);
void tarte_rte_pktmbuf_set_pkt_len(struct rte_mbuf *m, uint32_t len);
char *tarte_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *tarte_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *tarte_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int tarte_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t tarte_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t tarte_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
void tarte_rte_pktmbuf_reset(struct rte_mbuf *m);
uint16_t tarte_rte_pktmbuf_nb_segs(const struct rte_mbuf *m);

int tarte_rte_errno(void);
void tarte_rte_set_errno(int value);
unsigned int tarte_rte_lcore_id(void);

#endif
